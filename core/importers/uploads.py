"""Uploads from the dashboard: persisted to disk at once (the browser's copy vanishes when
the user leaves the page), next to the database, before they are imported; and a stored
dataset as Parquet bytes for download."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from core.store import DatasetInfo, Store
from core.types import TTSLabError


def uploads_dir(store: Store) -> Path:
    """Where uploaded files are kept (next to the database file; git-ignored)."""
    return store.path.parent / "uploads"


#: Longest file or folder name kept from an upload (file systems stop at 255 bytes).
MAX_NAME = 120
#: Upload space on disk (uploads are removed once imported or refused, so this bounds what
#: concurrent uploads can hold); TTSLAB_UPLOAD_QUOTA_MB overrides it.
DEFAULT_QUOTA_MB = 4096


class UploadError(TTSLabError):
    """An upload cannot be kept (no space left in the upload quota)."""


def _safe(name: str) -> str:
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    if len(clean) > MAX_NAME:  # keep the suffix: the importers detect the format from it
        stem, dot, suffix = clean.rpartition(".")
        if dot and 0 < len(suffix) <= 10:
            clean = stem[: MAX_NAME - len(suffix) - 1] + "." + suffix
        else:
            clean = clean[:MAX_NAME]
    return clean


def _check_quota(store: Store, incoming: int) -> None:
    quota = int(os.environ.get("TTSLAB_UPLOAD_QUOTA_MB", DEFAULT_QUOTA_MB)) << 20
    folder = uploads_dir(store)
    used = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
    if used + incoming > quota:
        raise UploadError(
            f"the upload space is full ({used >> 20} MB of {quota >> 20} MB in use): try "
            "again when other imports have finished"
        )


def save_upload(store: Store, name: str, data: bytes) -> Path:
    """Persist an uploaded file under uploads/<content hash>/<its own name> (sanitised and
    shortened), so that error messages name the user's file and the same upload is stored
    once. `discard_upload` removes it after the import."""
    _check_quota(store, len(data))
    digest = hashlib.sha256(data).hexdigest()[:12]
    folder = uploads_dir(store) / digest
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (_safe(Path(name).name) or "upload")
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def discard_upload(store: Store, path: Path) -> None:
    """Remove a persisted upload (a file and its hash folder, or an uploaded folder) once
    it has been imported or refused; never anything outside the uploads folder."""
    root = uploads_dir(store).resolve()
    target = path.resolve()
    if not target.is_relative_to(root) or target == root:
        return
    top = root / target.relative_to(root).parts[0]
    shutil.rmtree(top, ignore_errors=True)


def _safe_parts(relpath: str) -> list[str]:
    parts = []
    for part in relpath.replace("\\", "/").split("/"):
        clean = _safe(part)
        if clean and part not in (".", ".."):
            parts.append(clean)
    return parts


def save_upload_folder(store: Store, files: Sequence[tuple[str, bytes]]) -> Path:
    """Persist an uploaded folder, keeping its inner layout (OpenR run folders need it):
    files land under uploads/folder-<hash>/<relative path>. Path components are sanitised
    ('..' and absolute parts are dropped), so nothing is written outside."""
    if not files:
        raise ValueError("the uploaded folder is empty")
    _check_quota(store, sum(len(d) for _, d in files))
    digest = hashlib.sha256()
    for rel, data in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    root = uploads_dir(store) / f"folder-{digest.hexdigest()[:12]}"
    taken: set[Path] = set()
    for rel, data in sorted(files):
        parts = _safe_parts(rel)
        if not parts:
            continue
        path = root.joinpath(*parts)
        # two names that sanitise alike ("a b.jsonl", "a_b.jsonl") both stay
        k = 2
        while path in taken:
            stem, dot, suffix = parts[-1].rpartition(".")
            name = f"{stem}-{k}.{suffix}" if dot else f"{parts[-1]}-{k}"
            path = root.joinpath(*parts[:-1], name)
            k += 1
        taken.add(path)
        if not path.resolve().is_relative_to(root.resolve()):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
    # a browser sends "<folder>/<file>": import the uploaded folder itself
    tops = {(_safe_parts(rel) or [""])[0] for rel, _ in files}
    if len(tops) == 1 and (root / next(iter(tops))).is_dir():
        return root / next(iter(tops))
    return root


def parquet_bytes(store: Store, dataset: DatasetInfo | str) -> bytes:
    """The dataset in the long import format, as Parquet bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.Table.from_pandas(store.export_long(dataset), preserve_index=False)
    pq.write_table(table, buf)
    return buf.getvalue()


__all__ = [
    "UploadError",
    "discard_upload",
    "parquet_bytes",
    "save_upload",
    "save_upload_folder",
    "uploads_dir",
]
