"""A text file read in chunks of whole lines, so a streamed import holds one chunk at a
time whatever the size of the file (`core.importers.generic` parses CSV and JSON Lines
from them).

Each chunk ends at a newline, except the file's last piece when the file does not end
with one; it knows the number of its first line and its byte offset, so every problem
found in it is named by the file's own line numbers. A line longer than the limit is
never held: it is skipped and reported by number and length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from core.importers.errors import ImportValidationError, Issue
from core.importers.limits import MAX_LINE_CHARS

if TYPE_CHECKING:
    from hashlib import _Hash as Hash

#: Bytes read per chunk by the streamed text readers (a chunk ends at the next newline).
TEXT_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True)
class Chunk:
    """Whole lines of a file (``data``), from line ``first_line`` (1-based) at byte
    ``offset``. ``overlong``: instead of data, the length in bytes of line
    ``first_line``, which is over the limit and was skipped."""

    data: bytes
    first_line: int
    offset: int
    overlong: int = 0

    @property
    def complete(self) -> bool:
        """Whether the chunk ends with a newline (only the file's last piece may not)."""
        return self.data.endswith(b"\n")


def line_chunks(
    path: Path,
    file: str,
    chunk_bytes: int = TEXT_CHUNK_BYTES,
    max_line: int = MAX_LINE_CHARS,
    digest: Hash | None = None,
) -> Iterator[Chunk]:
    """The chunks of `path` in order (``file``: its name in errors); ``digest`` is fed
    every byte of the file, skipped lines included.

    Raises `ImportValidationError` for a file that is empty or holds only white space,
    or whose lines end in a bare CR (old Mac line endings: every reader would see one
    giant line).
    """
    line, offset = 1, 0
    buf = bytearray()
    content = False
    with path.open("rb") as fh:
        while True:
            block = fh.read(chunk_bytes)
            if digest is not None:
                digest.update(block)
            buf += block
            if not content:
                content = len(buf) > 0 and not buf.isspace()
                if not content and not block:
                    raise ImportValidationError([Issue(file, "the file is empty")])
                if not content and len(buf) <= max_line:
                    continue  # nothing but white space so far
            if not block:  # end of the file: what is left is its last piece
                if buf:
                    if line == 1 and b"\r" in buf:
                        raise bare_cr(file)
                    yield Chunk(bytes(buf), line, offset)
                break
            cut = buf.rfind(b"\n")
            if cut < 0:  # the line goes on in the next block
                if len(buf) <= max_line:
                    continue
                if line == 1 and b"\r" in buf:
                    raise bare_cr(file)
                length, rest = _skip_line(fh, len(buf), chunk_bytes, digest)
                yield Chunk(b"", line, offset, overlong=length)
                if rest is None:
                    break
                line, offset = line + 1, offset + length + 1
                buf = bytearray(rest)
                continue
            piece = bytes(buf[: cut + 1])
            del buf[: cut + 1]
            yield Chunk(piece, line, offset)
            line += piece.count(b"\n")
            offset += len(piece)


def bare_cr(file: str) -> ImportValidationError:
    """The error of a text file whose lines end in a bare CR."""
    return ImportValidationError(
        [Issue(file, "lines end in a bare CR (old Mac line endings); convert to LF or CRLF")]
    )


def _skip_line(
    fh: BinaryIO, seen: int, chunk_bytes: int, digest: Hash | None
) -> tuple[int, bytes | None]:
    """Read past the end of an over-long line of which ``seen`` bytes were read; its
    length and what follows its newline (None: the file ended inside the line)."""
    length = seen
    while True:
        block = fh.read(chunk_bytes)
        if digest is not None:
            digest.update(block)
        if not block:
            return length, None
        nl = block.find(b"\n")
        if nl >= 0:
            return length + nl, bytes(block[nl + 1 :])
        length += len(block)
