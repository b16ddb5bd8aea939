"""``sfrik-zoo``: list, inspect, download, convert and publish pretrained SFRIK models.

Examples::

    sfrik-zoo list
    sfrik-zoo info sfrik-r50-in1k-200ep-q32768
    sfrik-zoo download sfrik-r50-in1k-200ep-q32768
    sfrik-zoo convert sfrik-r50-in1k-200ep-q32768 --to timm -o r50_sfrik_timm.pth
    sfrik-zoo convert path/to/solo.ckpt --to official -o my_backbone.pth
    sfrik-zoo add my-model --file my_backbone.pth --url https://host/my_backbone.pth \\
        --dataset cifar100 --epochs 400 --license CC-BY-4.0
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from .download import UnverifiedDownloadWarning, ZooDownloadError, cache_dir, download, sha256_file
from .manifest import (
    AssembledSpec,
    FileSpec,
    ManifestError,
    ModelEntry,
    UnknownModelError,
    add_entry,
    get_entry,
    load_manifest,
    manifest_path,
)

# ``sfrik_plugin.zoo.convert`` the attribute is the convert() function; get the module.
conv = importlib.import_module(__package__ + ".convert")

PROG = "sfrik-zoo"
_REPO_ROOT = Path(__file__).resolve().parents[2]


class CLIError(Exception):
    """A user error: printed without a traceback, exit status 2."""


@contextmanager
def _loud_warnings():
    """Print unverified-download warnings as a visible banner on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, UnverifiedDownloadWarning):
                    bar = "!" * 78
                    print(f"{bar}\nWARNING: {w.message}\n{bar}", file=sys.stderr)
                else:
                    print(f"warning: {w.message}", file=sys.stderr)


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _cmd_list(args) -> int:
    entries = load_manifest(args.manifest)
    rows = [("NAME", "ARCH", "DATASET", "EPOCHS", "q", "KIND", "TOP-1", "SIZE")]
    for e in entries.values():
        top1 = next((m["value"] for m in e.metrics if "top-1" in m["name"] and "linear" in m["name"]), None)
        rows.append(
            (
                e.name,
                e.architecture,
                e.dataset,
                str(e.epochs),
                str(e.q or "-"),
                e.kind,
                "-" if top1 is None else f"{top1}",
                _fmt_size(e.total_size),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _card_file(entry: ModelEntry) -> Path | None:
    if not entry.card:
        return None
    for base in (Path.cwd(), _REPO_ROOT):
        p = base / entry.card
        if p.is_file():
            return p
    return None


def _cmd_info(args) -> int:
    e = get_entry(args.name, args.manifest)
    if args.json:
        print(json.dumps(e.to_dict(), indent=2))
        return 0
    print(f"{e.name}: {e.description}")
    print(f"  architecture : {e.architecture} ({e.stem} stem)")
    print(f"  dataset      : {e.dataset}, {e.epochs} epochs, batch {e.batch_size or '?'}")
    print(f"  q            : {e.q or '?'}   projector: {e.projector or '?'}")
    if e.kernel:
        print("  kernel       : " + ", ".join(f"{k}={v}" for k, v in e.kernel.items() if k != "note"))
    print(f"  format       : {e.format} ({e.kind})")
    for m in e.metrics:
        print(f"  metric       : {m['name']} = {m['value']}  [source: {m['source']}]")
    for i, f in enumerate(e.files):
        label = "file" if len(e.files) == 1 else f"part {i + 1}/{len(e.files)}"
        print(f"  {label:<13}: {f.url}")
        print(f"  {'':<13}  size {_fmt_size(f.size)}, sha256 {f.sha256 or 'UNKNOWN (not verifiable)'}")
    if e.assembled:
        a = e.assembled
        print(
            f"  assembled    : {a.filename}, size {_fmt_size(a.size)}, sha256 {a.sha256 or 'UNKNOWN (not verifiable)'}"
        )
    print(f"  license      : {e.license}")
    if e.source:
        print(f"  source       : {e.source}")
    cached = (cache_dir() if args.cache is None else Path(args.cache)) / e.name / e.output_filename
    print(f"  cache        : {cached} ({'present' if cached.exists() else 'not downloaded'})")
    card = _card_file(e)
    print(f"  card         : {card or e.card or '-'}")
    if card and args.card:
        print()
        print(card.read_text(encoding="utf-8"))
    return 0


def _download_kwargs(args):
    return dict(
        cache=args.cache,
        progress=not args.no_progress,
        timeout=args.timeout,
        retries=args.retries,
        manifest=args.manifest,
    )


def _cmd_download(args) -> int:
    with _loud_warnings():
        path = download(args.name, sha256=args.sha256, keep_parts=args.keep_parts, **_download_kwargs(args))
    print(path)
    return 0


def _parse_set(items: list[str]) -> dict:
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"--set {item!r}: expected KEY.PATH=VALUE (VALUE as JSON, or a plain string)")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return out


def _cmd_convert(args) -> int:
    src = Path(args.src)
    entry = None
    if not src.exists():
        try:
            entry = get_entry(args.src, args.manifest)
        except UnknownModelError as e:
            raise CLIError(f"{args.src!r} is neither an existing file nor a zoo model ({e})") from None
        from . import weights_path

        with _loud_warnings():
            src = weights_path(entry.name, sha256=args.sha256, **_download_kwargs(args))
    if args.to == "solo":
        out = conv.convert(
            src,
            "solo",
            args.output,
            arch=args.arch,
            trust_pickle=args.trust_pickle,
            name=args.name or (entry.name if entry else "sfrik-zoo"),
            method=args.method,
            dataset=args.dataset,
            epochs=args.epochs,
            entry=entry,
            extra_args=_parse_set(args.set),
        )
        print(f"wrote {out} and {out.parent / 'args.json'}", file=sys.stderr)
    else:
        if args.set:
            raise CLIError("--set only applies to --to solo")
        out = conv.convert(src, args.to, args.output, arch=args.arch, trust_pickle=args.trust_pickle)
        print(f"wrote {args.to} state_dict to {out}", file=sys.stderr)
    print(out)
    return 0


def _parse_metric(text: str) -> dict:
    # NAME=VALUE@SOURCE, e.g. "cifar100 linear top-1 (%)=61.2@our run 2024-05, linear.yaml"
    if "=" not in text or "@" not in text.split("=", 1)[1]:
        raise CLIError(f"--metric {text!r}: expected NAME=VALUE@SOURCE")
    name, rest = text.split("=", 1)
    value, source = rest.split("@", 1)
    try:
        num = float(value)
    except ValueError:
        raise CLIError(f"--metric {text!r}: value {value!r} is not a number") from None
    return {"name": name.strip(), "value": num, "source": source.strip()}


_CARD_TEMPLATE = """# {name}

{description}

| field | value |
|---|---|
| architecture | {architecture} ({stem} stem) |
| dataset | {dataset} |
| epochs | {epochs} |
| batch size | {batch_size} |
| q (projector output) | {q} |
| projector | {projector} |
| kernel | {kernel} |
| format | {format} |
| size | {size} bytes |
| sha256 | `{sha256}` |
| license | {license} |

## Files
{files}

## Reported metrics
{metrics}

## How to use
```bash
sfrik-zoo download {name}
sfrik-zoo convert {name} --to timm -o {name}_timm.pth      # or --to torchvision / --to solo
```

## Training details
TODO: command line / config used, code version (git commit), hardware, training time.

## Limitations
TODO: known issues, evaluation caveats.
"""


def _cmd_add(args) -> int:
    if len(args.file) != len(args.url):
        raise CLIError(f"give one --url per --file ({len(args.file)} files, {len(args.url)} urls)")
    paths = [Path(p) for p in args.file]
    for p in paths:
        if not p.is_file():
            raise CLIError(f"--file {p}: no such file")
    files = [FileSpec(p.name, u, p.stat().st_size, sha256_file(p)) for p, u in zip(paths, args.url)]
    assembled = None
    if len(files) > 1:
        if not args.assembled_filename:
            raise CLIError("several --file parts need --assembled-filename")
        import hashlib

        h = hashlib.sha256()
        for p in paths:
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        assembled = AssembledSpec(args.assembled_filename, sum(f.size for f in files), h.hexdigest())
        arch, stem, fmt, kind = args.architecture, args.stem, "official-full-checkpoint-targz", "full-checkpoint"
        if arch == "auto":
            raise CLIError("multi-part entries need an explicit --architecture")
    else:
        # Only publish what the zoo can hand over: check it is an official-format backbone.
        obj = conv.load_checkpoint(paths[0], trust_pickle=False)
        sd, dropped = conv.extract_backbone(obj)
        if dropped or set(obj) != set(sd):
            raise CLIError(
                f"{paths[0]} is not a plain backbone state_dict; convert it first: "
                f"sfrik-zoo convert {paths[0]} --to official -o backbone.pth"
            )
        arch, stem = conv.check_backbone(sd, args.architecture)
        fmt, kind = "official-backbone", "backbone"
    kernel = {}
    if args.family:
        kernel["family"] = args.family
    if args.L is not None:
        kernel["L"] = args.L
    if args.kernel_weights:
        kernel["weights"] = [float(x) for x in args.kernel_weights.split(",")]
    cards_dir = (
        Path(args.cards_dir)
        if args.cards_dir
        else (_REPO_ROOT / "zoo" / "cards" if (_REPO_ROOT / "zoo" / "cards").is_dir() else Path("zoo/cards"))
    )
    card_path = cards_dir / f"{args.name}.md"
    try:
        card_ref = str(card_path.resolve().relative_to(_REPO_ROOT))
    except ValueError:
        card_ref = str(card_path)
    entry = ModelEntry(
        name=args.name,
        architecture=arch,
        dataset=args.dataset,
        epochs=args.epochs,
        files=files,
        license=args.license,
        kind=kind,
        format=fmt,
        stem=stem,
        description=args.description or "",
        batch_size=args.batch_size,
        q=args.q,
        projector=args.projector,
        kernel=kernel,
        metrics=[_parse_metric(m) for m in args.metric or []],
        assembled=assembled,
        source=args.source,
        card=card_ref,
    )
    target_manifest = Path(args.manifest) if args.manifest else manifest_path()
    add_entry(entry, target_manifest, replace=args.replace)
    if card_path.exists() and not args.replace:
        print(f"kept the existing card {card_path}", file=sys.stderr)
    else:
        card_path.parent.mkdir(parents=True, exist_ok=True)
        out = assembled or files[0]
        card_path.write_text(
            _CARD_TEMPLATE.format(
                name=entry.name,
                description=entry.description or "TODO: one-paragraph description.",
                architecture=arch,
                stem=stem,
                dataset=entry.dataset,
                epochs=entry.epochs,
                batch_size=entry.batch_size or "?",
                q=entry.q or "?",
                projector=entry.projector or "?",
                kernel=", ".join(f"{k}={v}" for k, v in kernel.items()) or "?",
                format=fmt,
                size=out.size,
                sha256=out.sha256,
                license=entry.license,
                files="\n".join(f"- `{f.filename}` ({f.size} bytes, sha256 `{f.sha256}`): {f.url}" for f in files),
                metrics="\n".join(f"- {m['name']}: {m['value']} (source: {m['source']})" for m in entry.metrics)
                or "- none reported yet",
            ),
            encoding="utf-8",
        )
    print(f"added {entry.name} to {target_manifest} (sha256 {(assembled or files[0]).sha256}); card: {card_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Pretrained SFRIK models: list, download, convert, publish.")
    p.add_argument(
        "--manifest", default=None, help="manifest JSON to use (default: the packaged one, or $SFRIK_ZOO_MANIFEST)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def net(sp):
        sp.add_argument(
            "--cache", default=None, help="cache directory (default: $SFRIK_ZOO_CACHE or ~/.cache/sfrik-plugin/zoo)"
        )
        sp.add_argument("--no-progress", action="store_true", help="no progress bar")
        sp.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a retry (default 30)")
        sp.add_argument("--retries", type=int, default=3, help="resume attempts after an interruption (default 3)")
        sp.add_argument(
            "--sha256", default=None, help="expected sha256 of the final file (pins it when the manifest has none)"
        )

    s = sub.add_parser("list", help="list the models of the zoo")
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="show one model's manifest entry and card")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="print the raw manifest entry")
    s.add_argument("--card", action="store_true", help="also print the model card")
    s.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("download", help="download (or find in the cache) a model; prints its path")
    s.add_argument("name")
    net(s)
    s.add_argument("--keep-parts", action="store_true", help="keep the parts of a multi-part file after assembly")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("convert", help="convert weights between official / solo / torchvision / timm formats")
    s.add_argument("src", help="a weight file, or a zoo model name (downloaded if needed)")
    s.add_argument("--to", required=True, choices=conv.CONVERT_TARGETS, help="target format")
    s.add_argument("-o", "--output", required=True, help="output file (.pth), or directory for --to solo")
    s.add_argument("--arch", default=None, help="expected architecture (default: inferred)")
    s.add_argument(
        "--trust-pickle", action="store_true", help="allow non-tensor objects in a checkpoint you made yourself"
    )
    g = s.add_argument_group("solo-learn output (--to solo)")
    g.add_argument("--name", default=None, help="run name written into args.json / the ckpt file name")
    g.add_argument("--method", default="sfrik", help="solo-learn method key written into args.json (default sfrik)")
    g.add_argument(
        "--dataset", default=None, help="solo-learn dataset name (decides the stem; default from the manifest)"
    )
    g.add_argument("--epochs", type=int, default=None, help="epoch number recorded in the checkpoint")
    g.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override an args.json value (JSON value)")
    net(s)
    s.set_defaults(func=_cmd_convert)

    s = sub.add_parser("add", help="add a model you trained to the manifest (+ model card)")
    s.add_argument("name")
    s.add_argument(
        "--file", action="append", required=True, help="local copy of the published file (repeat for parts, in order)"
    )
    s.add_argument("--url", action="append", required=True, help="where --file is published (repeat, same order)")
    s.add_argument("--assembled-filename", default=None, help="name of the concatenation of several parts")
    s.add_argument("--architecture", default="auto", help="resnet18/34/50/101 (default: inferred from the weights)")
    s.add_argument("--stem", default="imagenet", choices=conv.STEMS, help="stem of multi-part entries")
    s.add_argument("--dataset", required=True)
    s.add_argument("--epochs", type=int, required=True)
    s.add_argument("--license", required=True)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--q", type=int, default=None, help="projector output dimension")
    s.add_argument("--projector", default=None, help="e.g. 8192-8192-32768")
    s.add_argument("--family", default="sfrik", help="kernel family (default sfrik)")
    s.add_argument("--L", type=int, default=None, help="truncation degree")
    s.add_argument("--kernel-weights", default=None, help="comma separated, e.g. 1,40,40")
    s.add_argument("--metric", action="append", metavar="NAME=VALUE@SOURCE")
    s.add_argument("--description", default=None)
    s.add_argument("--source", default=None, help="URL of the release / run")
    s.add_argument("--cards-dir", default=None, help="where to write the model card (default: zoo/cards)")
    s.add_argument("--replace", action="store_true", help="overwrite an existing entry (and its card)")
    s.set_defaults(func=_cmd_add)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, UnknownModelError, ManifestError, conv.ConversionError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ZooDownloadError as e:
        print(f"{PROG}: download failed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (a partial download is kept and will be resumed)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
