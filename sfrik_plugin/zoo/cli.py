"""``sfrik-zoo``: list, inspect, download, convert and publish pretrained SFRIK models.

Examples::

    sfrik-zoo list
    sfrik-zoo info sfrik-r50-in1k-200ep-q32768
    sfrik-zoo download sfrik-r50-in1k-200ep-q32768 [--force]
    sfrik-zoo convert sfrik-r50-in1k-200ep-q32768 --to timm -o r50_sfrik_timm.pth
    sfrik-zoo convert path/to/solo.ckpt --to official -o my_backbone.pth
    sfrik-zoo add my-model --file my_backbone.pth --url https://host/my_backbone.pth \\
        --dataset cifar100 --epochs 400 --license CC-BY-4.0

Downloads use https only: a plain ``http://`` URL (or a redirect from https down to http) needs
``--allow-http``, and a redirect to any other scheme is refused.

Exit status: 0 success; 1 the download failed (network, server, checksum: try again); 2 a
mistake you can fix or a refusal (a bad manifest, a plain-http URL without ``--allow-http``, a
redirect off http(s); the message, one line, says what to do); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..console import InputError, setup_console
from .catalog import get_entry, load_catalog
from .cli_add import add_parser
from .download import cache_dir, download
from .errors import UnverifiedDownloadWarning, ZooDownloadError
from .manifest import ModelEntry, UnknownModelError
from .pretrained import weights_path
from .reading import read_weights

# ``sfrik_plugin.zoo.convert`` the attribute is the convert() function; get the module.
conv = importlib.import_module(__package__ + ".convert")

PROG = "sfrik-zoo"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _loud_warnings() -> Iterator[None]:
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


class _Stderr:
    """Whatever ``sys.stderr`` is at the time of writing (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextmanager
def _console() -> Iterator[None]:
    """Show the zoo's log lines on stderr (stdout carries paths) for this command only."""
    logger = logging.getLogger("sfrik_plugin")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    setup_console(stream=_Stderr())
    try:
        yield
    finally:
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _cmd_list(args: argparse.Namespace) -> int:
    entries = load_catalog(args.manifest)
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
    bases = ([entry.origin.parent] if entry.origin is not None else []) + [Path.cwd(), _REPO_ROOT]
    for base in bases:
        p = base / entry.card  # an absolute card path ignores the base
        if p.is_file():
            return p
    return None


def _hash_text(sha256: str | None, recorded_in: Path | None) -> str:
    if sha256 is None:
        return "UNKNOWN (not verifiable)"
    return f"{sha256} (recorded on first use in {recorded_in})" if recorded_in else sha256


def _cmd_info(args: argparse.Namespace) -> int:
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
        print(f"  {'':<13}  size {_fmt_size(f.size)}, sha256 {_hash_text(f.sha256, f.recorded_in)}")
    if e.assembled:
        a = e.assembled
        print(f"  assembled    : {a.filename}, size {_fmt_size(a.size)}, sha256 {_hash_text(a.sha256, a.recorded_in)}")
    print(f"  license      : {e.license}")
    if e.source:
        print(f"  source       : {e.source}")
    print(f"  manifest     : {e.origin}")
    cached = (cache_dir() if args.cache is None else Path(args.cache)) / e.name / e.output_filename
    print(f"  cache        : {cached} ({'present' if cached.exists() else 'not downloaded'})")
    card = _card_file(e)
    print(f"  card         : {card or e.card or '-'}")
    if card and args.card:
        print()
        print(card.read_text(encoding="utf-8"))
    return 0


def _download_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        cache=args.cache,
        progress=not args.no_progress,
        timeout=args.timeout,
        retries=args.retries,
        manifest=args.manifest,
        allow_http=args.allow_http,
    )


def _cmd_download(args: argparse.Namespace) -> int:
    with _loud_warnings():
        path = download(
            args.name, sha256=args.sha256, keep_parts=args.keep_parts, force=args.force, **_download_kwargs(args)
        )
    print(path)
    return 0


def _parse_set(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected KEY.PATH=VALUE (VALUE as JSON, or a plain string)")
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


def _cmd_convert(args: argparse.Namespace) -> int:
    src: Any = Path(args.src)
    entry = None
    if not src.exists():
        try:
            entry = get_entry(args.src, args.manifest)
        except UnknownModelError as e:
            raise InputError(f"{args.src!r} is neither an existing file nor a zoo model ({e})") from None
        with _loud_warnings():
            path = weights_path(entry.name, sha256=args.sha256, **_download_kwargs(args))
        # a download: weights only, whatever --trust-pickle says
        src = read_weights(path, model=entry.name, trust_pickle=args.trust_pickle)
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
            raise InputError("--set only applies to --to solo")
        out = conv.convert(src, args.to, args.output, arch=args.arch, trust_pickle=args.trust_pickle)
        print(f"wrote {args.to} state_dict to {out}", file=sys.stderr)
    print(out)
    return 0


def _manifest_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument(
        "--manifest",
        # on a sub-command, only set it when given, so that `sfrik-zoo --manifest M add ...` works too
        default=None if top else argparse.SUPPRESS,
        help="your user manifest: models you added, hashes recorded on first download (default: "
        "$SFRIK_ZOO_MANIFEST or <cache dir>/manifest.json); the packaged manifest is always read too",
    )


def _net_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--cache", default=None, help="cache directory (default: $SFRIK_ZOO_CACHE or ~/.cache/sfrik-plugin/zoo)"
    )
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    sp.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a retry (default 30)")
    sp.add_argument("--retries", type=int, default=3, help="resume attempts after an interruption (default 3)")
    sp.add_argument(
        "--sha256", default=None, help="expected sha256 of the final file (pins it when the manifest has none)"
    )
    sp.add_argument(
        "--allow-http",
        action="store_true",
        help="also download from plain http:// URLs (and follow redirects from https to http): anyone on the "
        "network path can alter such a download; meant for a mirror you control. Without it, http is refused",
    )
    _manifest_option(sp)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Pretrained SFRIK models: list, download, convert, publish.")
    _manifest_option(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("list", help="list the models of the zoo")
    _manifest_option(s)
    s.set_defaults(func=_cmd_list)

    s = sub.add_parser("info", help="show one model's manifest entry and card")
    s.add_argument("name")
    s.add_argument("--json", action="store_true", help="print the raw manifest entry")
    s.add_argument("--card", action="store_true", help="also print the model card")
    s.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    _manifest_option(s)
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("download", help="download (or find in the cache) a model; prints its path")
    s.add_argument("name")
    _net_options(s)
    s.add_argument("--keep-parts", action="store_true", help="keep the parts of a multi-part file after assembly")
    s.add_argument(
        "--force", action="store_true", help="download again; the cached file is replaced once the new one is verified"
    )
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("convert", help="convert weights between official / solo / torchvision / timm formats")
    s.add_argument("src", help="a weight file, or a zoo model name (downloaded if needed)")
    s.add_argument("--to", required=True, choices=conv.CONVERT_TARGETS, help="target format")
    s.add_argument("-o", "--output", required=True, help="output file (.pth), or directory for --to solo")
    s.add_argument("--arch", default=None, help="expected architecture (default: inferred)")
    s.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow non-tensor objects in a checkpoint you made yourself (never applies to downloads)",
    )
    g = s.add_argument_group("solo-learn output (--to solo)")
    g.add_argument("--name", default=None, help="run name written into args.json / the ckpt file name")
    g.add_argument("--method", default="sfrik", help="solo-learn method key written into args.json (default sfrik)")
    g.add_argument(
        "--dataset", default=None, help="solo-learn dataset name (decides the stem; default from the manifest)"
    )
    g.add_argument("--epochs", type=int, default=None, help="epoch number recorded in the checkpoint")
    g.add_argument("--set", action="append", metavar="KEY.PATH=VALUE", help="override an args.json value (JSON value)")
    _net_options(s)
    s.set_defaults(func=_cmd_convert)

    add_parser(sub, _manifest_option)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``sfrik-zoo``; returns the exit status (module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _console():
            return int(args.func(args))
    except InputError as e:  # bad manifest, unknown model, corrupt cache file, wrong --sha256, ...
        print(f"{PROG}: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    except ZooDownloadError as e:
        print(f"{PROG}: download failed: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (a partial download is kept and will be resumed)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
