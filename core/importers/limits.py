"""Explicit limits on what an imported file may hold.

Each is far above anything the real LLM outputs in ``../shared/data`` reach (the longest
JSON line there is 0.9 million characters, the deepest record 4 levels) and exists so that
hostile or broken input fails fast with an error naming the file, the line and the limit,
instead of exhausting memory or CPU. The README's "Limits"
section lists them.
"""

from __future__ import annotations

from typing import Final

#: characters in one line of a JSON Lines or CSV file
MAX_LINE_CHARS: Final = 64 * 1024 * 1024
#: nesting depth of lists and objects in one JSON record (a record is depth 1)
MAX_DEPTH: Final = 64
#: columns of a CSV header
MAX_COLUMNS: Final = 1000
#: characters in one answer, gold answer or answer key (given, or taken from a box)
MAX_ANSWER_CHARS: Final = 10_000
#: ``\boxed`` / ``\fbox`` commands in one completion or reference solution
MAX_BOXES: Final = 10_000


def too_many_boxes(text: str) -> str | None:
    """An error message when `text` holds more than MAX_BOXES boxes, else None."""
    n = text.count("\\boxed") + text.count("\\fbox")
    if n > MAX_BOXES:
        return f"{n:,} \\boxed commands in one text; the limit is {MAX_BOXES:,}"
    return None


def depth_over(obj: object, limit: int = MAX_DEPTH) -> bool:
    """Whether lists/objects nest deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            if d > limit:
                return True
            stack.extend((x, d + 1) for x in v)
    return False
