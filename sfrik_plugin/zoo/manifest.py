"""The model-zoo manifest: one JSON file, one entry per published model.

The single source of truth is ``sfrik_plugin/zoo/manifest.json`` (shipped inside the
package so that an installed ``sfrik-zoo`` works without the source tree).  Model cards
live in the repository under ``zoo/cards/``.

Example::

    >>> from sfrik_plugin.zoo.manifest import list_models, get_entry
    >>> "sfrik-r50-in1k-200ep-q32768" in list_models()
    True
    >>> get_entry("sfrik-r50-in1k-200ep-q32768").architecture
    'resnet50'
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
SCHEMA_VERSION = 1

#: Formats the zoo knows how to hand to other tools.
FORMATS = ("official-backbone", "official-full-checkpoint-targz")
KINDS = ("backbone", "full-checkpoint")
STEMS = ("imagenet", "cifar")

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class ManifestError(ValueError):
    """The manifest (or a new entry for it) is malformed."""


class UnknownModelError(KeyError):
    """A model name that is not in the manifest."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = list(known)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return f"unknown model {self.name!r}; known models: {', '.join(self.known) or '(none)'}"


def check_sha256(value: str | None, what: str = "sha256") -> str | None:
    """Return ``value`` lower-cased if it is a 64-hex-digit sha256 (or None), else raise."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256_RE.match(value.strip().lower()):
        raise ManifestError(f"{what}: {value!r} is not a sha256 (expected 64 hexadecimal digits, or null)")
    return value.strip().lower()


@dataclass
class FileSpec:
    """One downloadable file (or one part of a split file)."""

    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> FileSpec:
        for key in ("filename", "url"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ManifestError(f"{where}: missing or empty {key!r}")
        fname = d["filename"]
        if "/" in fname or "\\" in fname or fname in (".", ".."):
            raise ManifestError(f"{where}: filename {fname!r} must be a plain file name")
        if not d["url"].startswith(("https://", "http://")):
            raise ManifestError(f"{where}: url {d['url']!r} must be http(s)")
        size = d.get("size")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ManifestError(f"{where}: size {size!r} must be a non-negative integer or null")
        return cls(fname, d["url"], size, check_sha256(d.get("sha256"), f"{where}.sha256"))

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "url": self.url, "size": self.size, "sha256": self.sha256}


@dataclass
class AssembledSpec:
    """The file obtained by concatenating all parts of a multi-part entry, in order."""

    filename: str
    size: int | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "size": self.size, "sha256": self.sha256}


@dataclass
class ModelEntry:
    """One model of the zoo (see ``zoo/README.md`` for the meaning of each field)."""

    name: str
    architecture: str
    dataset: str
    epochs: int
    files: list[FileSpec]
    license: str
    kind: str = "backbone"
    format: str = "official-backbone"
    stem: str = "imagenet"
    description: str = ""
    batch_size: int | None = None
    q: int | None = None
    projector: str | None = None
    kernel: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    assembled: AssembledSpec | None = None
    source: str | None = None
    paper: str | None = None
    card: str | None = None

    @property
    def output_filename(self) -> str:
        """Name of the file the user finally gets (the assembled file for multi-part entries)."""
        return self.assembled.filename if self.assembled else self.files[0].filename

    @property
    def output_sha256(self) -> str | None:
        return self.assembled.sha256 if self.assembled else self.files[0].sha256

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(sizes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        name = d.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ManifestError(f"entry name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
        where = f"model {name!r}"
        for key in ("architecture", "dataset", "license"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ManifestError(f"{where}: missing or empty {key!r}")
        if not isinstance(d.get("epochs"), int):
            raise ManifestError(f"{where}: 'epochs' must be an integer")
        files = d.get("files")
        if not isinstance(files, list) or not files:
            raise ManifestError(f"{where}: 'files' must be a non-empty list")
        specs = [FileSpec.from_dict(f, f"{where}.files[{i}]") for i, f in enumerate(files)]
        kind = d.get("kind", "backbone")
        fmt = d.get("format", "official-backbone")
        stem = d.get("stem", "imagenet")
        for key, value, allowed in (("kind", kind, KINDS), ("format", fmt, FORMATS), ("stem", stem, STEMS)):
            if value not in allowed:
                raise ManifestError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")
        assembled = None
        if d.get("assembled") is not None:
            a = d["assembled"]
            if not isinstance(a.get("filename"), str) or "/" in a["filename"]:
                raise ManifestError(f"{where}: assembled.filename must be a plain file name")
            assembled = AssembledSpec(
                a["filename"], a.get("size"), check_sha256(a.get("sha256"), f"{where}.assembled.sha256")
            )
        if len(specs) > 1 and assembled is None:
            raise ManifestError(f"{where}: several files need an 'assembled' section")
        names = [s.filename for s in specs] + ([assembled.filename] if assembled else [])
        if len(set(names)) != len(names):
            raise ManifestError(f"{where}: file names must be distinct")
        metrics = d.get("metrics", [])
        for m in metrics:
            if not {"name", "value", "source"} <= set(m):
                raise ManifestError(f"{where}: every metric needs 'name', 'value' and 'source'")
        return cls(
            name=name,
            architecture=d["architecture"],
            dataset=d["dataset"],
            epochs=d["epochs"],
            files=specs,
            license=d["license"],
            kind=kind,
            format=fmt,
            stem=stem,
            description=d.get("description", ""),
            batch_size=d.get("batch_size"),
            q=d.get("q"),
            projector=d.get("projector"),
            kernel=dict(d.get("kernel") or {}),
            metrics=list(metrics),
            assembled=assembled,
            source=d.get("source"),
            paper=d.get("paper"),
            card=d.get("card"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "format": self.format,
            "architecture": self.architecture,
            "stem": self.stem,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "q": self.q,
            "projector": self.projector,
            "kernel": self.kernel,
            "metrics": self.metrics,
            "files": [f.to_dict() for f in self.files],
            "assembled": self.assembled.to_dict() if self.assembled else None,
            "license": self.license,
            "source": self.source,
            "paper": self.paper,
            "card": self.card,
        }


def manifest_path() -> Path:
    """Path of the manifest in use: ``$SFRIK_ZOO_MANIFEST`` if set, else the packaged one."""
    env = os.environ.get("SFRIK_ZOO_MANIFEST")
    return Path(env).expanduser() if env else MANIFEST_PATH


def load_manifest(path: os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Read and validate a manifest; return ``{name: ModelEntry}`` in file order.

    Example::

        >>> entries = load_manifest()
        >>> sorted(entries)[0]
        'sfrik-r50-in1k-200ep-q32768'
    """
    p = Path(path) if path is not None else manifest_path()
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {p}") from None
    except json.JSONDecodeError as e:
        raise ManifestError(f"manifest {p} is not valid JSON: {e}") from None
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ManifestError(f"manifest {p}: schema_version {raw.get('schema_version')!r} is not {SCHEMA_VERSION}")
    entries: dict[str, ModelEntry] = {}
    for d in raw.get("models", []):
        e = ModelEntry.from_dict(d)
        if e.name in entries:
            raise ManifestError(f"manifest {p}: duplicate model name {e.name!r}")
        entries[e.name] = e
    return entries


def list_models(path: os.PathLike | None = None) -> list[str]:
    """Names of all models in the manifest, in manifest order."""
    return list(load_manifest(path))


def get_entry(name: str, path: os.PathLike | None = None) -> ModelEntry:
    """The manifest entry called ``name``; :class:`UnknownModelError` lists the known names."""
    entries = load_manifest(path)
    if name not in entries:
        raise UnknownModelError(name, list(entries))
    return entries[name]


def write_manifest(entries: dict[str, ModelEntry], path: os.PathLike) -> None:
    """Write ``entries`` to ``path`` atomically (temporary file, then rename)."""
    p = Path(path)
    data = {"schema_version": SCHEMA_VERSION, "models": [e.to_dict() for e in entries.values()]}
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)


def add_entry(entry: ModelEntry, path: os.PathLike | None = None, replace: bool = False) -> None:
    """Append ``entry`` to the manifest at ``path`` (validated by a round trip first)."""
    p = Path(path) if path is not None else manifest_path()
    entries = load_manifest(p) if p.exists() else {}
    entry = ModelEntry.from_dict(entry.to_dict())  # validate
    if entry.name in entries and not replace:
        raise ManifestError(f"model {entry.name!r} is already in {p}; pass replace=True (CLI: --replace) to overwrite")
    entries[entry.name] = entry
    write_manifest(entries, p)
