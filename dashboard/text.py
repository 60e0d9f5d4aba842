"""User strings in Streamlit's markdown: shown as written, never rendered."""

from __future__ import annotations

_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~$:=")


def plain(text: object) -> str:
    """`text` escaped for Streamlit markdown, so that a user's string (a dataset, LLM or
    verifier name, a file name, an error quoting one) is shown as written: no links,
    images, emphasis, colour directives or LaTeX."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text)).replace("\n", "  \n")


__all__ = ["plain"]
