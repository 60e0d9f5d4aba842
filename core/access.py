"""Who may change the store from the dashboard: read-only viewers and editors.

`ttslab serve` passes its access options to the dashboard process in environment
variables; `AccessPolicy.from_env` reads them back:

* ``TTSLAB_READ_ONLY=1``: nobody edits. The dashboard opens the database read-only, so an
  upload, replace or delete is refused by DuckDB itself, not only hidden.
* ``TTSLAB_EDITORS_FILE=PATH``: only editors edit. Each line of the file is
  ``NAME SHA256-OF-TOKEN`` (``ttslab add-editor FILE NAME`` writes one and prints the
  token once); a visitor becomes editor NAME by entering the token in the sidebar. Tokens
  are compared by their hashes in constant time; the file never holds a token.
* ``TTSLAB_USER_HEADER=X-Forwarded-User``: behind an authenticating reverse proxy, the
  user the proxy puts in that header is the visitor; with an editors file, only the names
  listed there edit (their hashes are then not needed), without one every authenticated
  user edits.

With none of these (a researcher's own machine), every visitor edits, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from core.types import TTSLabError

READ_ONLY_ENV: Final = "TTSLAB_READ_ONLY"
EDITORS_ENV: Final = "TTSLAB_EDITORS_FILE"
USER_HEADER_ENV: Final = "TTSLAB_USER_HEADER"


class AccessError(TTSLabError):
    """A change was asked for by someone who may not make it."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_editors(path: str | Path) -> dict[str, str]:
    """NAME -> sha256 of the token, from an editors file (blank lines and # comments
    skipped). A malformed line is an error naming the file and line."""
    out: dict[str, str] = {}
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessError(f"cannot read editors file {p}: {exc}") from exc
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) != 64:
            raise AccessError(f"{p}, line {i}: expected 'NAME SHA256-OF-TOKEN'")
        out[parts[0]] = parts[1].lower()
    return out


def add_editor(path: str | Path, name: str) -> str:
    """Append a new editor to the editors file and return their token (shown once)."""
    if not name or any(c.isspace() for c in name):
        raise AccessError("an editor name is one word")
    p = Path(path)
    if p.exists() and name in read_editors(p):
        raise AccessError(f"{name!r} is already an editor in {p}")
    token = secrets.token_urlsafe(24)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(f"{name} {hash_token(token)}\n")
    return token


@dataclass(frozen=True)
class AccessPolicy:
    read_only: bool = False
    editors: Mapping[str, str] = field(default_factory=dict)
    restricted: bool = False  # an editors file was given (even an empty one)
    user_header: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AccessPolicy:
        e = os.environ if env is None else env
        editors_file = e.get(EDITORS_ENV) or None
        return cls(
            read_only=e.get(READ_ONLY_ENV, "") == "1",
            editors=read_editors(editors_file) if editors_file else {},
            restricted=editors_file is not None,
            user_header=e.get(USER_HEADER_ENV) or None,
        )

    @property
    def asks_for_token(self) -> bool:
        """Whether visitors need to enter a token to edit."""
        return not self.read_only and self.restricted and self.user_header is None

    def editor(self, token: str | None, headers: Mapping[str, str] | None = None) -> str | None:
        """The name a visitor edits as, or None when they may not edit."""
        if self.read_only:
            return None
        if self.user_header is not None:
            user = _header(headers or {}, self.user_header)
            if not user:
                return None
            if self.restricted and user not in self.editors:
                return None
            return f"proxy:{user}"
        if not self.restricted:
            return "dashboard"
        if not token:
            return None
        digest = hash_token(token)
        for name, h in self.editors.items():
            if hmac.compare_digest(digest, h):
                return f"editor:{name}"
        return None

    def require(self, editor: str | None) -> str:
        """`editor` when it may edit; else the refusal (the server-side check behind every
        upload, replace and delete)."""
        if self.read_only:
            raise AccessError("this dashboard is read-only: uploads and deletes are refused")
        if editor is None:
            raise AccessError("only editors may upload, replace or delete datasets")
        return editor


def _header(headers: Mapping[str, str], name: str) -> str:
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return str(v).strip()
    return ""


__all__ = [
    "EDITORS_ENV",
    "READ_ONLY_ENV",
    "USER_HEADER_ENV",
    "AccessError",
    "AccessPolicy",
    "add_editor",
    "hash_token",
    "read_editors",
]
