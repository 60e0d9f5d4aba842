"""Every `ttslab` command the README shows runs, as written, against the demo (issue: the
README's `transfer --source DS/LLM/VER` form once failed to parse).

Placeholders are filled in (DATASET: the demo; M, A, B: its LLMs; V, V1, V2: its
verifiers; files: temporary copies of data/examples), optional `[...]` parts are run both
left out and put in, and `ttslab serve` is only parsed (the browser tests start it)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import duckdb
import pytest

from core.cli import build_parser, main
from core.store import Store
from core.synth.demo import DEMO_NAME, build_demo

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if re.match(r"^(\.venv/bin/)?ttslab ", line):
                out.append(re.sub(r"^\.venv/bin/", "", line))
    return out


def variants(cmd: str) -> list[str]:
    """The command without its optional parts, and with all of them (the first choice of
    an `a | b` alternative)."""
    bare = re.sub(r"\s*\[[^\]]*\]", "", cmd)
    full = re.sub(r"\[([^\]|]*)(\|[^\]]*)?\]", r"\1", cmd)
    return list(dict.fromkeys([bare, full]))


def fill(cmd: str, tmp: Path) -> list[str]:
    subs = {
        "DATASET": DEMO_NAME,
        "DS/LLM/VER": f"{DEMO_NAME}/sim-llm-A/sim-qwen-orm",
        "M": "sim-llm-A",
        "A": "sim-llm-A",
        "B": "sim-llm-B",
        "V": "sim-qwen-orm",
        "V1": "sim-qwen-orm",
        "V2": "sim-grm-orm",
        "F": str(tmp / "editors.txt"),
        "runs/my_scores.parquet": str(tmp / "my_scores.parquet"),
        "big_run/": str(tmp / "big_run"),
        "study/": str(tmp / "study"),
        "out.csv": str(tmp / "out.csv"),
        "weights.json": str(tmp / "weights.json"),
        "report.html": str(tmp / "report.html"),
        "editors.txt": str(tmp / "editors.txt"),
        # the demo at the README's size takes minutes: a small one runs the same code
        "500": "40",
        "64": "16",
    }
    argv = []
    for tok in shlex.split(cmd)[1:]:
        if tok == "...":
            continue
        argv.append(subs.get(tok, tok))
    return argv


COMMANDS = [v for c in readme_commands() for v in variants(c)]


def test_the_readme_shows_the_commands() -> None:
    verbs = {c.split()[1] for c in COMMANDS}
    assert {"import", "list", "curves", "stopping", "frontier", "ensemble", "transfer"} <= verbs


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("readme") / "r.duckdb"
    with Store(db) as s:
        build_demo(s, n_problems=40, n_samples=16)
    return db


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_readme_command_runs(
    cmd: str, demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(EXAMPLES / "example_long.parquet", tmp_path / "my_scores.parquet")
    (tmp_path / "big_run").mkdir()
    shutil.copy(EXAMPLES / "example_long.csv", tmp_path / "big_run" / "part.csv")
    # the example as llm=/verifier= folders, for `import --in-place`
    duckdb.execute(
        "COPY (SELECT * FROM read_parquet(?)) TO ? (FORMAT parquet, PARTITION_BY (llm, verifier))",
        [str(EXAMPLES / "example_long.parquet"), str(tmp_path / "study")],
    )
    db = tmp_path / "r.duckdb"
    shutil.copy(demo_db, db)
    argv = fill(cmd, tmp_path)
    if argv[0] == "serve":
        build_parser().parse_args(argv)  # runs only in the browser tests
        return
    if argv[0] in ("show", "delete") and "my-run" in argv:
        assert (
            main(
                ["--db", str(db), "import", str(tmp_path / "my_scores.parquet"), "--name", "my-run"]
            )
            == 0
        )
    if argv[0] == "demo":
        argv.append("--replace")
    rc = main(["--db", str(db), *argv])
    out = capsys.readouterr()
    assert rc == 0, f"{cmd!r} -> {argv}: {out.err[-2000:]}"
    assert "Traceback" not in out.err
