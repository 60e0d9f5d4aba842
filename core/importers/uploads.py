"""Uploads from the dashboard: persisted to disk at once (the browser's copy vanishes when
the user leaves the page), next to the database, before they are imported; and a stored
dataset as Parquet bytes for download."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path

from core.store import DatasetInfo, Store


def uploads_dir(store: Store) -> Path:
    """Where uploaded files are kept (next to the database file; git-ignored)."""
    return store.path.parent / "uploads"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")


def save_upload(store: Store, name: str, data: bytes) -> Path:
    """Persist an uploaded file. The file name keeps the original suffix (the importers
    detect the format from it) and is prefixed with a content hash, so the same upload is
    stored once."""
    folder = uploads_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    safe = _safe(Path(name).name) or "upload"
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = folder / f"{digest}-{safe}"
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


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
    digest = hashlib.sha256()
    for rel, data in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    root = uploads_dir(store) / f"folder-{digest.hexdigest()[:12]}"
    for rel, data in files:
        parts = _safe_parts(rel)
        if not parts:
            continue
        path = root.joinpath(*parts)
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


__all__ = ["parquet_bytes", "save_upload", "save_upload_folder", "uploads_dir"]
