"""The model-zoo manifest: one JSON file, one entry per published model.

The published models are in ``sfrik_plugin/zoo/manifest.json`` (shipped inside the package
so that an installed ``sfrik-zoo`` works without the source tree; never written at run time).
Models you add, and the sizes and hashes recorded on first download, go to a user manifest
of the same format (:mod:`sfrik_plugin.zoo.catalog` merges the two). Model cards live in the
repository under ``zoo/cards/``.

This module reads, validates and writes one manifest file.

Example::

    >>> from sfrik_plugin.zoo.manifest import load_manifest
    >>> load_manifest()["sfrik-r50-in1k-200ep-q32768"].architecture
    'resnet50'
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..console import InputError
from ..files.records import write_text_atomic
from .fields import (
    ASSEMBLED_KEYS,
    ENTRY_KEYS,
    FILE_KEYS,
    MANIFEST_KEYS,
    METRIC_KEYS,
    ManifestError,
    check_filename,
    check_keys,
    check_optional,
    check_sha256,
    check_size,
    check_url,
    unknown_key_hint,
)

__all__ = [
    "MANIFEST_PATH",
    "SCHEMA_VERSION",
    "FORMATS",
    "KINDS",
    "STEMS",
    "ManifestError",
    "UnknownModelError",
    "FileSpec",
    "AssembledSpec",
    "ModelEntry",
    "check_filename",
    "check_keys",
    "check_sha256",
    "check_size",
    "check_url",
    "unknown_key_hint",
    "read_manifest_data",
    "load_manifest",
    "write_manifest_data",
    "write_manifest",
]

MANIFEST_PATH = Path(__file__).with_name("manifest.json")
SCHEMA_VERSION = 1

#: Formats the zoo knows how to hand to other tools.
FORMATS = ("official-backbone", "official-full-checkpoint-targz")
KINDS = ("backbone", "full-checkpoint")
STEMS = ("imagenet", "cifar")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class UnknownModelError(InputError, KeyError):
    """A model name that is not in the manifest."""

    def __init__(self, name: str, known: list[str]):
        self.name = name
        self.known = list(known)
        super().__init__(name)

    def __str__(self) -> str:  # KeyError would quote the whole message otherwise
        return f"unknown model {self.name!r}; known models: {', '.join(self.known) or '(none)'}"


@dataclass
class FileSpec:
    """One downloadable file (or one part of a split file)."""

    filename: str
    url: str
    size: int | None = None
    sha256: str | None = None
    #: the user manifest that recorded ``size`` / ``sha256`` on first download (None: published)
    recorded_in: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> FileSpec:
        if not isinstance(d, dict):
            raise ManifestError(f"{where}: expected an object with filename, url, size, sha256, got {d!r}")
        check_keys(d, FILE_KEYS, where)
        if not isinstance(d.get("url"), str) or not d["url"]:
            raise ManifestError(f"{where}: missing or empty 'url'")
        return cls(
            check_filename(d.get("filename"), f"{where}.filename"),
            check_url(d["url"], f"{where}.url"),
            check_size(d.get("size"), f"{where}.size"),
            check_sha256(d.get("sha256"), f"{where}.sha256"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"filename": self.filename, "url": self.url, "size": self.size, "sha256": self.sha256}


@dataclass
class AssembledSpec:
    """The file obtained by concatenating all parts of a multi-part entry, in order."""

    filename: str
    size: int | None = None
    sha256: str | None = None
    recorded_in: Path | None = field(default=None, compare=False, repr=False)

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
    #: the manifest file this entry comes from (not written out)
    origin: Path | None = field(default=None, compare=False, repr=False)

    @property
    def output_filename(self) -> str:
        """Name of the file the user finally gets (the assembled file for multi-part entries)."""
        return self.assembled.filename if self.assembled else self.files[0].filename

    @property
    def output_sha256(self) -> str | None:
        return self.assembled.sha256 if self.assembled else self.files[0].sha256

    @property
    def total_size(self) -> int | None:
        sizes = [f.size for f in self.files if f.size is not None]
        return sum(sizes) if len(sizes) == len(self.files) else None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        if not isinstance(d, dict):
            raise ManifestError(f"a manifest entry must be an object, got {d!r}")
        name = d.get("name")
        where = f"model {name!r}"
        check_keys(d, ENTRY_KEYS, where)  # first: a misspelt key explains the missing one
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ManifestError(f"entry name {name!r} must be lower-case letters, digits, '.', '_' or '-'")
        for key in ("architecture", "dataset", "license"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ManifestError(f"{where}: missing or empty {key!r}")
        if not isinstance(d.get("epochs"), int) or isinstance(d.get("epochs"), bool):
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
            if not isinstance(a, dict):
                raise ManifestError(f"{where}.assembled: expected an object with filename, size, sha256, or null")
            check_keys(a, ASSEMBLED_KEYS, f"{where}.assembled")
            assembled = AssembledSpec(
                check_filename(a.get("filename"), f"{where}.assembled.filename"),
                check_size(a.get("size"), f"{where}.assembled.size"),
                check_sha256(a.get("sha256"), f"{where}.assembled.sha256"),
            )
        if len(specs) > 1 and assembled is None:
            raise ManifestError(f"{where}: several files need an 'assembled' section")
        names = [s.filename for s in specs] + ([assembled.filename] if assembled else [])
        if len(set(names)) != len(names):
            raise ManifestError(f"{where}: file names must be distinct")
        metrics = d.get("metrics") or []
        if not isinstance(metrics, list) or not all(isinstance(m, dict) for m in metrics):
            raise ManifestError(f"{where}: 'metrics' must be a list of objects with name, value, source")
        for i, m in enumerate(metrics):
            check_keys(m, METRIC_KEYS, f"{where}.metrics[{i}]")
            if not set(METRIC_KEYS) <= set(m):
                raise ManifestError(f"{where}: every metric needs 'name', 'value' and 'source'")
        check_optional(d, where)
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


def read_manifest_data(path: str | os.PathLike) -> dict[str, Any]:
    """The raw JSON of a manifest file, checked to be a manifest of this schema version.

    Example::

        >>> read_manifest_data(MANIFEST_PATH)["schema_version"]
        1
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {p}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"manifest {p} is not valid JSON ({e}): fix or delete it") from None
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        found = raw.get("schema_version") if isinstance(raw, dict) else type(raw).__name__
        raise ManifestError(f"manifest {p}: schema_version {found!r} is not {SCHEMA_VERSION}")
    check_keys(raw, MANIFEST_KEYS, f"manifest {p}")
    if not isinstance(raw.get("models", []), list):
        raise ManifestError(f"manifest {p}: 'models' must be a list")
    return raw


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Read and validate ONE manifest file (default: the packaged one); ``{name: ModelEntry}`` in file order.

    The zoo itself reads the packaged manifest *and* the user's: see :mod:`sfrik_plugin.zoo.catalog`.

    Example::

        >>> entries = load_manifest()
        >>> sorted(entries)[0]
        'sfrik-r50-in1k-200ep-q32768'
    """
    p = Path(path) if path is not None else MANIFEST_PATH
    entries: dict[str, ModelEntry] = {}
    for d in read_manifest_data(p).get("models", []):
        try:
            e = ModelEntry.from_dict(d)
        except ManifestError as error:
            raise ManifestError(f"manifest {p}: {error}") from None
        if e.name in entries:
            raise ManifestError(f"manifest {p}: duplicate model name {e.name!r}")
        e.origin = p
        entries[e.name] = e
    return entries


def write_manifest_data(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write raw manifest JSON to ``path`` atomically (fields keep their order)."""
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_manifest(entries: dict[str, ModelEntry], path: str | os.PathLike) -> Path:
    """Write ``entries`` as a complete manifest to ``path`` atomically."""
    return write_manifest_data(
        {"schema_version": SCHEMA_VERSION, "models": [e.to_dict() for e in entries.values()]}, path
    )
