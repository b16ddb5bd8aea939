"""``sfrik-zoo add``: publish a model you trained — a user-manifest entry and a model card.

The entry goes to the user manifest (``--manifest PATH``, else ``$SFRIK_ZOO_MANIFEST``, else
``<cache dir>/manifest.json``), never into the manifest shipped inside the package; the card
goes next to it (``<manifest folder>/cards/NAME.md``) unless ``--cards-dir`` says otherwise.
Sizes and sha256 are computed from the local copies (``--file``), and a single file must be a
plain official-format backbone (what the zoo can hand over).

Example::

    sfrik-zoo add my-r18 --file my_r18.pth --url https://host/my_r18.pth \\
        --dataset cifar100 --epochs 400 --license CC-BY-4.0
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..console import InputError
from .backbone import check_backbone, extract_backbone
from .catalog import add_user_entry, user_manifest_path
from .integrity import sha256_file
from .manifest import AssembledSpec, FileSpec, ModelEntry, check_url
from .models import STEMS
from .reading import read_weights

__all__ = ["add_parser", "parse_metric"]

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


def parse_metric(text: str) -> dict[str, Any]:
    """``NAME=VALUE@SOURCE`` as a manifest metric.

    Example::

        >>> parse_metric("cifar100 linear top-1 (%)=61.2@our run")
        {'name': 'cifar100 linear top-1 (%)', 'value': 61.2, 'source': 'our run'}
    """
    if "=" not in text or "@" not in text.split("=", 1)[1]:
        raise InputError(f"--metric {text!r}: expected NAME=VALUE@SOURCE")
    name, rest = text.split("=", 1)
    value, source = rest.split("@", 1)
    try:
        number = float(value)
    except ValueError:
        raise InputError(f"--metric {text!r}: value {value!r} is not a number") from None
    return {"name": name.strip(), "value": number, "source": source.strip()}


def _sha256_of_concatenation(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _published_files(args: argparse.Namespace) -> tuple[list[FileSpec], AssembledSpec | None, str, str, str, str]:
    """The files, assembled file, architecture, stem, format and kind of the new entry."""
    if len(args.file) != len(args.url):
        raise InputError(f"give one --url per --file ({len(args.file)} files, {len(args.url)} urls)")
    for url in args.url:
        check_url(url, "--url")
        if urlsplit(url).scheme == "http" and not args.allow_http:
            raise InputError(
                f"--url {url}: plain http, which anyone on the network path can alter, and every download of it "
                f"would need --allow-http; publish over https, or pass --allow-http to add it anyway"
            )
    paths = [Path(p) for p in args.file]
    for p in paths:
        if not p.is_file():
            raise InputError(f"--file {p}: no such file")
    sizes = [p.stat().st_size for p in paths]
    files = [FileSpec(p.name, u, n, sha256_file(p)) for p, u, n in zip(paths, args.url, sizes)]
    if len(files) > 1:
        if not args.assembled_filename:
            raise InputError("several --file parts need --assembled-filename")
        if args.architecture == "auto":
            raise InputError("multi-part entries need an explicit --architecture")
        assembled = AssembledSpec(args.assembled_filename, sum(sizes), _sha256_of_concatenation(paths))
        return files, assembled, args.architecture, args.stem, "official-full-checkpoint-targz", "full-checkpoint"
    # Only publish what the zoo can hand over: an official-format backbone, read weights-only.
    obj = read_weights(paths[0])
    sd, dropped = extract_backbone(obj)
    if dropped or not isinstance(obj, dict) or set(obj) != set(sd):
        raise InputError(
            f"{paths[0]} is not a plain backbone state_dict; convert it first: "
            f"sfrik-zoo convert {paths[0]} --to official -o backbone.pth"
        )
    arch, stem = check_backbone(sd, args.architecture)
    return files, None, arch, stem, "official-backbone", "backbone"


def _card_paths(args: argparse.Namespace, manifest: Path) -> tuple[Path, str]:
    """Where the card is written, and how the entry refers to it (relative to the manifest if inside)."""
    card_path = (Path(args.cards_dir) if args.cards_dir else manifest.parent / "cards") / f"{args.name}.md"
    try:
        return card_path, str(card_path.resolve().relative_to(manifest.parent.resolve()))
    except ValueError:
        return card_path, str(card_path.resolve())


def _write_card(card_path: Path, entry: ModelEntry) -> None:
    out = entry.assembled or entry.files[0]
    card_path.parent.mkdir(parents=True, exist_ok=True)
    card_path.write_text(
        _CARD_TEMPLATE.format(
            name=entry.name,
            description=entry.description or "TODO: one-paragraph description.",
            architecture=entry.architecture,
            stem=entry.stem,
            dataset=entry.dataset,
            epochs=entry.epochs,
            batch_size=entry.batch_size or "?",
            q=entry.q or "?",
            projector=entry.projector or "?",
            kernel=", ".join(f"{k}={v}" for k, v in entry.kernel.items()) or "?",
            format=entry.format,
            size=out.size,
            sha256=out.sha256,
            license=entry.license,
            files="\n".join(f"- `{f.filename}` ({f.size} bytes, sha256 `{f.sha256}`): {f.url}" for f in entry.files),
            metrics="\n".join(f"- {m['name']}: {m['value']} (source: {m['source']})" for m in entry.metrics)
            or "- none reported yet",
        ),
        encoding="utf-8",
    )


def cmd_add(args: argparse.Namespace) -> int:
    """Run ``sfrik-zoo add`` (see the module docstring)."""
    files, assembled, arch, stem, fmt, kind = _published_files(args)
    kernel: dict[str, Any] = {}
    if args.family:
        kernel["family"] = args.family
    if args.L is not None:
        kernel["L"] = args.L
    if args.kernel_weights:
        try:
            kernel["weights"] = [float(x) for x in args.kernel_weights.split(",")]
        except ValueError:
            raise InputError(
                f"--kernel-weights {args.kernel_weights!r}: expected numbers separated by commas"
            ) from None
    manifest = user_manifest_path(args.manifest)
    card_path, card_ref = _card_paths(args, manifest)
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
        metrics=[parse_metric(m) for m in args.metric or []],
        assembled=assembled,
        source=args.source,
        card=card_ref,
    )
    written = add_user_entry(entry, manifest, replace=args.replace)
    if card_path.exists() and not args.replace:
        print(f"kept the existing card {card_path}")
    else:
        _write_card(card_path, entry)
    print(f"added {entry.name} to {written} (sha256 {(assembled or files[0]).sha256}); card: {card_path}")
    return 0


def add_parser(sub: Any, manifest_option: Any) -> None:
    """Declare ``sfrik-zoo add`` on the sub-command parsers ``sub``."""
    s = sub.add_parser("add", help="add a model you trained to your user manifest (+ model card)")
    s.add_argument("name")
    s.add_argument(
        "--file", action="append", required=True, help="local copy of the published file (repeat for parts, in order)"
    )
    s.add_argument("--url", action="append", required=True, help="where --file is published (repeat, same order)")
    s.add_argument("--assembled-filename", default=None, help="name of the concatenation of several parts")
    s.add_argument("--architecture", default="auto", help="resnet18/34/50/101 (default: inferred from the weights)")
    s.add_argument("--stem", default="imagenet", choices=STEMS, help="stem of multi-part entries")
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
    s.add_argument("--cards-dir", default=None, help="where to write the model card (default: <manifest folder>/cards)")
    s.add_argument("--replace", action="store_true", help="overwrite an existing entry (and its card)")
    s.add_argument("--allow-http", action="store_true", help="accept plain http:// URLs (downloads then need it too)")
    manifest_option(s)
    s.set_defaults(func=cmd_add)
