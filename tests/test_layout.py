"""The layout shows the data flow, and the imports obey it: importers -> store -> methods ->
evaluation -> studies -> info -> figures -> pages. Layers only look down, there are no
import cycles (function-local imports included), core never imports Streamlit or the
dashboard, and pages import only the info layer, the figure builders, the registry's
public face and the dashboard's state."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: layer of each package (a module's layer is that of its longest matching prefix)
LAYERS: dict[str, float] = {
    "core.types": 0,
    "core.lru": 0,  # a bounded memory, used by the store and the dashboard
    "core.store": 1,
    "core.grading": 2,
    "core.importers": 3,
    "core.methods": 4,
    "core.evaluation": 5,
    "core.studies": 6,
    "core.synth": 6,
    "core.info": 7,
    "core.reports": 8,
    "core.apply": 8,
    "core.access": 1,
    "core.parts": 0.5,  # between the types and the store
    "core.cli": 9,
    "dashboard.text": 8,
    "dashboard.export": 8,
    "dashboard.figures": 9,
    "dashboard.report": 10,
    "dashboard.state": 11,
    "dashboard.app": 12,
    "dashboard.views": 12,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> float | None:
    best = None
    for prefix, layer in LAYERS.items():
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, layer)
    return None if best is None else best[1]


def _imports(path: Path) -> set[str]:
    """Every project module imported anywhere in the file (function-local too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in out if m.split(".")[0] in ("core", "dashboard", "streamlit")}


def _files() -> list[Path]:
    return sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("dashboard/**/*.py")])


def _resolve(name: str, modules: set[str]) -> str | None:
    """The project module an imported name refers to (a module, or a name in one)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_has_a_layer() -> None:
    missing = [_module_name(p) for p in _files() if _layer(_module_name(p)) is None]
    assert missing == [] or all(m in ("core", "dashboard") for m in missing), missing


#: The one import that looks up: `ttslab report` writes the dashboard's figures to a file.
#: What it reaches must stay free of Streamlit (checked below).
UPWARD = {("core.cli", "dashboard.report")}


def test_layers_only_look_down() -> None:
    modules = {_module_name(p) for p in _files()}
    bad = []
    for path in _files():
        me = _module_name(path)
        mine = _layer(me)
        if mine is None:
            continue
        for imp in _imports(path):
            if imp.startswith("streamlit"):
                if me.startswith("core"):
                    bad.append(f"{me} imports streamlit")
                continue
            target = _resolve(imp, modules)
            if target is None or target in ("core", "dashboard"):
                continue
            theirs = _layer(target)
            if theirs is None:
                continue
            same_package = target.split(".")[:2] == me.split(".")[:2]
            if (me, target) in UPWARD:
                continue
            if theirs > mine or (theirs == mine and not same_package):
                bad.append(f"{me} (layer {mine}) imports {target} (layer {theirs})")
    assert bad == []


def test_what_the_cli_reaches_in_the_dashboard_never_imports_streamlit() -> None:
    modules = {_module_name(p) for p in _files()}
    by_name = {_module_name(p): p for p in _files()}
    todo = [t for _, t in UPWARD]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen or m not in by_name:
            continue
        seen.add(m)
        imports = _imports(by_name[m])
        assert not any(i.startswith("streamlit") for i in imports), m
        todo += [t for i in imports if (t := _resolve(i, modules)) and t.startswith("dashboard")]
    assert {"dashboard.report", "dashboard.figures", "dashboard.export"} <= seen


def test_no_import_cycles() -> None:
    modules = {_module_name(p) for p in _files()}
    graph: dict[str, set[str]] = {}
    for path in _files():
        me = _module_name(path)
        deps = {_resolve(i, modules) for i in _imports(path) if not i.startswith("streamlit")}
        graph[me] = {d for d in deps if d and d != me and d not in ("core", "dashboard")}
    # a package's __init__ re-exporting its own modules is not a cycle of the code
    for m in list(graph):
        graph[m] = {d for d in graph[m] if not (d.startswith(m + "."))}
    seen: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if seen.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in seen:
                visit(d)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_pages_import_only_info_figures_registry_and_state() -> None:
    allowed = ("core.info", "core.methods", "dashboard.figures", "dashboard.state", "dashboard")
    bad = []
    for path in sorted(ROOT.glob("dashboard/views/*.py")):
        for imp in _imports(path):
            if imp.startswith("streamlit"):
                continue
            ok = any(imp == a or imp.startswith(a + ".") for a in allowed)
            # the registry's public face only: names exported by core.methods itself
            if imp.startswith("core.methods.") and imp.count(".") > 2:
                ok = False
            if not ok:
                bad.append(f"{path.name} imports {imp}")
    assert bad == []


def test_the_old_flat_modules_are_gone() -> None:
    for old in (
        "calibration",
        "strategies",
        "budget",
        "analysis",
        "views",
        "views_beyond",
        "reference",
        "simulate",
        "sim_fit",
        "demo",
        "examples",
        "allocation",
        "combine",
        "transfer",
        "stats",
        "reduce",
    ):
        assert not (ROOT / "core" / f"{old}.py").exists(), old
    assert (ROOT / "tests" / "reference.py").exists()
