"""The zoo's catalog: the packaged manifest plus the user's manifest, merged.

* The **packaged** manifest (``sfrik_plugin/zoo/manifest.json``) lists the published models. It
  lives inside the installed package and is never written at run time.
* The **user** manifest (``--manifest PATH``, else ``$SFRIK_ZOO_MANIFEST``, else
  ``<cache dir>/manifest.json``) has the same format. ``sfrik-zoo add`` writes the models you
  publish there, and the zoo records there the size and sha256 of the first trusted copy of
  a packaged model that publishes none (trust on first use, :func:`record_trusted`).
* A user entry with the name of a packaged model may only hold such a record: the keys
  ``name``, ``recorded``, ``files`` (``filename``, ``size``, ``sha256``) and ``assembled`` (same
  keys). Anything else is an error, and so is a record that contradicts a published value.

Example::

    >>> from sfrik_plugin.zoo.catalog import get_entry, list_models
    >>> "sfrik-r50-in1k-200ep-q32768" in list_models()
    True
    >>> get_entry("sfrik-r50-in1k-200ep-q32768").architecture
    'resnet50'
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from ..console import get_logger
from ..files.checkpoints import download_cache_dir
from .manifest import (
    MANIFEST_PATH,
    SCHEMA_VERSION,
    AssembledSpec,
    FileSpec,
    ManifestError,
    ModelEntry,
    UnknownModelError,
    check_keys,
    check_sha256,
    check_size,
    load_manifest,
    read_manifest_data,
    unknown_key_hint,
    write_manifest_data,
)

__all__ = [
    "USER_MANIFEST_ENV",
    "user_manifest_path",
    "is_packaged_manifest",
    "load_catalog",
    "list_models",
    "get_entry",
    "add_user_entry",
    "record_trusted",
]

log = get_logger(__name__)

USER_MANIFEST_ENV = "SFRIK_ZOO_MANIFEST"
_RECORD_KEYS = ("name", "recorded", "files", "assembled")
_RECORD_FILE_KEYS = ("filename", "size", "sha256")


def user_manifest_path(path: str | os.PathLike | None = None) -> Path:
    """The user manifest: ``path``, else ``$SFRIK_ZOO_MANIFEST``, else ``<cache dir>/manifest.json``.

    Example::

        >>> user_manifest_path("/tmp/my-zoo.json")
        PosixPath('/tmp/my-zoo.json')
    """
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(USER_MANIFEST_ENV)
    return Path(env).expanduser() if env else download_cache_dir() / "manifest.json"


def is_packaged_manifest(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the manifest shipped inside the package."""
    return Path(path).expanduser().resolve() == MANIFEST_PATH.resolve()


def _empty() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "models": []}


def _user_data(path: Path) -> dict[str, Any]:
    return read_manifest_data(path) if path.exists() else _empty()


def _apply_record(entry: ModelEntry, record: dict[str, Any], where: Path) -> None:
    """Fill the unknown sizes / hashes of a packaged ``entry`` from a user ``record``."""
    extra = [key for key in record if key not in _RECORD_KEYS]
    if extra:
        raise ManifestError(
            f"user manifest {where}: {entry.name!r} is a packaged model, so an entry of that name may only "
            f"record the size and sha256 of its files ({', '.join(_RECORD_KEYS)}), but it also sets "
            f"{', '.join(map(str, extra))} ({unknown_key_hint(extra[0], _RECORD_KEYS)}); give your model "
            f"another name, or remove those keys"
        )
    specs: dict[str, FileSpec | AssembledSpec] = {f.filename: f for f in entry.files}
    if entry.assembled is not None:
        specs[entry.assembled.filename] = entry.assembled
    items = list(record.get("files") or []) + ([record["assembled"]] if record.get("assembled") else [])
    for item in items:
        if not isinstance(item, dict) or "filename" not in item:
            raise ManifestError(
                f"user manifest {where}: a record of {entry.name!r} must list files as objects with the keys "
                f"filename, size, sha256; got {item!r}"
            )
        check_keys(
            item, _RECORD_FILE_KEYS, f"user manifest {where}: record of {entry.name!r}, file {item['filename']!r}"
        )
        spec = specs.get(item["filename"])
        if spec is None:
            raise ManifestError(
                f"user manifest {where}: {entry.name!r} has no file {item['filename']!r} (its files: "
                f"{', '.join(specs)}); delete that record"
            )
        what = f"user manifest {where}: {entry.name}/{spec.filename}"
        for attribute, value in (
            ("size", check_size(item.get("size"), f"{what} size")),
            ("sha256", check_sha256(item.get("sha256"), f"{what} sha256")),
        ):
            published = getattr(spec, attribute)
            if value is None or value == published:
                continue
            if published is not None:
                raise ManifestError(
                    f"{what}: the recorded {attribute} {value} differs from the published {published}. Your first "
                    f"copy was not the published file: delete the record of {entry.name!r} from {where} and run "
                    f"`sfrik-zoo download {entry.name} --force`"
                )
            setattr(spec, attribute, value)
            spec.recorded_in = where


def _merge(entries: dict[str, ModelEntry], data: dict[str, Any], where: Path) -> dict[str, ModelEntry]:
    packaged = set(entries)
    seen: set[str] = set()
    for d in data.get("models", []):
        name = d.get("name") if isinstance(d, dict) else None
        if isinstance(name, str) and name in seen:
            raise ManifestError(f"user manifest {where}: duplicate model name {name!r}")
        if isinstance(name, str) and name in packaged:
            _apply_record(entries[name], d, where)
        else:
            try:
                entry = ModelEntry.from_dict(d)
            except ManifestError as error:
                raise ManifestError(f"user manifest {where}: {error}") from None
            entry.origin = where
            entries[entry.name] = entry
        if isinstance(name, str):
            seen.add(name)
    return entries


def load_catalog(user: str | os.PathLike | None = None) -> dict[str, ModelEntry]:
    """Every model: the packaged ones (with recorded sizes / hashes filled in), then the user's.

    ``user`` is the user manifest (default :func:`user_manifest_path`); a missing file is empty.

    Example::

        >>> list(load_catalog())[:1]
        ['sfrik-r50-in1k-200ep-q32768']
    """
    entries = load_manifest(MANIFEST_PATH)
    path = user_manifest_path(user)
    if is_packaged_manifest(path):
        return entries
    return _merge(entries, _user_data(path), path)


def list_models(user: str | os.PathLike | None = None) -> list[str]:
    """Names of all models (packaged first, then the user's), in manifest order."""
    return list(load_catalog(user))


def get_entry(name: str, user: str | os.PathLike | None = None) -> ModelEntry:
    """The entry called ``name``; :class:`UnknownModelError` lists the known names.

    Example::

        >>> get_entry("sfrik-r50-in1k-200ep-q32768").epochs
        200
    """
    entries = load_catalog(user)
    if name not in entries:
        raise UnknownModelError(name, list(entries))
    return entries[name]


def add_user_entry(entry: ModelEntry, user: str | os.PathLike | None = None, replace: bool = False) -> Path:
    """Append ``entry`` to the user manifest (created if needed); return that file's path.

    Refuses the packaged manifest (it sits inside the installed package) and the names of
    packaged models.

    Example::

        >>> add_user_entry(my_entry, "/tmp/my-zoo.json")  # doctest: +SKIP
    """
    path = user_manifest_path(user)
    if is_packaged_manifest(path):
        raise ManifestError(
            f"{path} is the manifest shipped inside the package, which `sfrik-zoo add` never writes: name another "
            f"file with --manifest (or ${USER_MANIFEST_ENV}), or leave both out to use "
            f"{download_cache_dir() / 'manifest.json'}. To publish a model in this repository, copy its entry from "
            f"your user manifest into sfrik_plugin/zoo/manifest.json by hand"
        )
    entry = ModelEntry.from_dict(entry.to_dict())  # validate
    if entry.name in load_manifest(MANIFEST_PATH):
        raise ManifestError(f"{entry.name!r} is a packaged model of the zoo: give yours another name")
    data = _user_data(path)
    models = data.setdefault("models", [])
    index = next((i for i, d in enumerate(models) if isinstance(d, dict) and d.get("name") == entry.name), None)
    if index is not None and not replace:
        raise ManifestError(f"model {entry.name!r} is already in {path}; pass --replace (replace=True) to overwrite it")
    if index is None:
        models.append(entry.to_dict())
    else:
        models[index] = entry.to_dict()
    _merge(load_manifest(MANIFEST_PATH), data, path)  # the whole file must stay valid
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_manifest_data(data, path)


def record_trusted(
    name: str,
    values: dict[str, tuple[int, str]],
    user: str | os.PathLike | None = None,
    source: str = "trust on first use",
) -> Path | None:
    """Record ``{filename: (size, sha256)}`` of model ``name`` in the user manifest.

    For a packaged model this writes (or completes) a record-only entry; for a user entry it
    fills the fields that are still null. Values already known are never changed. Returns the
    manifest written, or ``None`` when there is nowhere to record (the user manifest is the
    packaged one, or the model is in no manifest).

    Example::

        >>> record_trusted("sfrik-r50-in1k-200ep-q32768", {"w.pth": (123, "ab" * 32)})  # doctest: +SKIP
    """
    path = user_manifest_path(user)
    if is_packaged_manifest(path):
        log.warning("not recording the sha256 of %s: the user manifest %s is the packaged one", name, path)
        return None
    packaged = load_manifest(MANIFEST_PATH)
    data = _user_data(path)
    models = data.setdefault("models", [])
    existing = next((d for d in models if isinstance(d, dict) and d.get("name") == name), None)
    if name in packaged:
        if existing is None:
            existing = {"name": name}
            models.append(existing)
        _fill_record(existing, packaged[name], values)
        stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
        existing["recorded"] = existing.get("recorded") or f"{source}, {stamp}"
    elif existing is not None:
        targets = list(existing.get("files") or []) + ([existing["assembled"]] if existing.get("assembled") else [])
        for target in targets:
            if target.get("filename") in values:
                size, sha256 = values[target["filename"]]
                target["size"] = size if target.get("size") is None else target["size"]
                target["sha256"] = sha256 if target.get("sha256") is None else target["sha256"]
    else:
        return None
    _merge(packaged, data, path)  # never write a file the zoo would then refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_manifest_data(data, path)


def _fill_record(record: dict[str, Any], entry: ModelEntry, values: dict[str, tuple[int, str]]) -> None:
    files = record.setdefault("files", [])
    for filename, (size, sha256) in values.items():
        if entry.assembled is not None and filename == entry.assembled.filename:
            item = record.get("assembled") or {"filename": filename, "size": None, "sha256": None}
            record["assembled"] = item
        else:
            item = next((f for f in files if f.get("filename") == filename), None)
            if item is None:
                item = {"filename": filename, "size": None, "sha256": None}
                files.append(item)
        item["size"] = size if item.get("size") is None else item["size"]
        item["sha256"] = sha256 if item.get("sha256") is None else item["sha256"]
