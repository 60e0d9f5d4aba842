"""User strings in Streamlit's markdown and in Plotly figures: shown as written, never
rendered."""

from __future__ import annotations

_MD_SPECIAL = frozenset("\\`*_{}[]()#+-.!|<>~$:=")


def plain(text: object) -> str:
    """`text` escaped for Streamlit markdown, so that a user's string (a dataset, LLM or
    verifier name, a file name, an error quoting one) is shown as written: no links,
    images, emphasis, colour directives or LaTeX."""
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text)).replace("\n", "  \n")


def plotly_plain(text: object) -> str:
    """`text` escaped for a Plotly figure, so that a user's string (a dataset, LLM,
    verifier or strategy name, a problem id, an answer) is shown as written.

    Plotly draws every text (titles, legend entries, tick labels, annotations, hover and
    cell text) as a subset of HTML (<a href>, <b>, <br>, <span style>, ...) and decodes
    the entities &lt; &gt; &amp; &#NN; in it (plotly.js `svg_text_utils.convertEntities`),
    so `&`, `<` and `>` become entities. Names, titles, annotations and hover templates
    also substitute `%{...}` (trace data, `meta`) before drawing: the `%` of a `%{` becomes
    `&#37;`, which is drawn as `%` but never read as a template variable. A text with two
    `$` is typeset as LaTeX where MathJax is loaded: `$` becomes `&#36;`.

    Escape each user string once, where it enters a figure, and add the figure's own
    markup (<br>, <b>, <sup>) around it afterwards."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("%{", "&#37;{").replace("$", "&#36;")


__all__ = ["plain", "plotly_plain"]
