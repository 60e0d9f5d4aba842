"""Curves on executors: a local process pool and a dask.distributed LocalCluster give the
serial run's results bit for bit; failed tasks and lost workers are retried and reported,
never dropped."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import core.evaluation.executors as executors
from core.evaluation import EvalConfig
from core.evaluation.executors import (
    ExecutorError,
    ExecutorSpec,
    RunLog,
    parse_executor,
    run_tasks,
)
from core.evaluation.pipeline import (
    PairFiles,
    curves_cache_params,
    load_pair,
    materialize,
    pair_curves,
    pair_source,
    precompute_curves,
)
from core.importers import import_path
from core.importers.writers import write_long_parquet
from core.store import DatasetInfo, Store
from tests.conftest import make_long_frame

STRATEGIES = ("majority", "best_of_n", "vanilla_wv", "logit_wv", "kde_wv")
CONFIG = EvalConfig(n_subsets=40, n_boot=50)


# -- task functions (top level: they travel to worker processes) ---------------------------


def square(x: int) -> int:
    return x * x


def fail_once(arg: tuple[str, int]) -> int:
    """Fails the first time it sees each value (a marker file remembers), then works."""
    folder, x = arg
    marker = Path(folder) / f"seen-{x}"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"flaky failure on {x}")
    return x + 100


def always_fail(x: int) -> int:
    raise ValueError(f"bad input {x}")


def analysis_error(x: int) -> int:
    from core.evaluation.pipeline import AnalysisError

    raise AnalysisError(f"no strategy can be fitted on {x}")


def die_always(x: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return x


def die_once(arg: tuple[str, int]) -> int:
    """Kills its own worker process the first time value 3 is seen."""
    folder, x = arg
    marker = Path(folder) / "died"
    if x == 3 and not marker.exists():
        marker.write_text("1")
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


# -- executor specs and the task runner ----------------------------------------------------


def test_parse_executor_specs() -> None:
    assert parse_executor("serial") == ExecutorSpec("serial")
    assert parse_executor("local:3") == ExecutorSpec("local", workers=3)
    assert parse_executor("local").workers == (os.cpu_count() or 1)
    spec = parse_executor("dask://10.0.0.5:8786")
    assert (spec.kind, spec.address, spec.text) == (
        "dask",
        "tcp://10.0.0.5:8786",
        "dask://10.0.0.5:8786",
    )
    for bad in ("local:0", "ray://x:1", "dask://nohost", "local:two"):
        with pytest.raises(ExecutorError, match="executor"):
            parse_executor(bad)


def test_parse_executor_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTSLAB_EXECUTOR", "local:2")
    assert parse_executor(None) == ExecutorSpec("local", workers=2)
    monkeypatch.delenv("TTSLAB_EXECUTOR")
    assert parse_executor(None).kind == "serial"


def test_local_pool_keeps_order_and_counts_progress() -> None:
    seen: list[tuple[int, int]] = []
    out, log = run_tasks(
        "local:2",
        square,
        [lambda k=k: k for k in range(7)],
        [f"t{k}" for k in range(7)],
        progress=lambda d, n: seen.append((d, n)),
    )
    assert out == [0, 1, 4, 9, 16, 25, 36]
    assert seen[0] == (0, 7) and seen[-1] == (7, 7)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert log.retried == [] and log.lost_workers == []


def test_failed_tasks_are_retried_and_reported(tmp_path: Path) -> None:
    out, log = run_tasks(
        "local:2", fail_once, [lambda k=k: (str(tmp_path), k) for k in range(3)], ["a", "b", "c"]
    )
    assert out == [100, 101, 102]
    assert sorted(r.split(" ")[0] for r in log.retried) == ["a", "b", "c"]
    assert all("flaky failure" in r for r in log.retried)


def test_a_task_failing_every_retry_is_an_error_naming_it() -> None:
    with pytest.raises(ExecutorError, match=r"task t1 failed 3 times .*bad input 1"):
        run_tasks("local:2", always_fail, [lambda: 1], ["t1"], retries=2)


def test_a_killed_local_worker_process_is_replaced_and_its_tasks_rerun(tmp_path: Path) -> None:
    out, log = run_tasks(
        "local:2",
        die_once,
        [lambda k=k: (str(tmp_path), k) for k in range(6)],
        [f"t{k}" for k in range(6)],
    )
    assert out == [0, 10, 20, 30, 40, 50]
    assert any("t3" in r and "died" in r for r in log.retried)


def test_an_analysis_error_is_not_retried_and_names_its_task() -> None:
    with pytest.raises(ExecutorError, match=r"^\(m1, v1\): no strategy can be fitted on 4$"):
        run_tasks("local:2", analysis_error, [lambda: 4], ["(m1, v1)"])
    with pytest.raises(ExecutorError, match=r"^\(m1, v1\): no strategy"):
        run_tasks("serial", analysis_error, [lambda: 4], ["(m1, v1)"])


def test_a_task_that_always_kills_its_worker_ends_the_run() -> None:
    with pytest.raises(ExecutorError, match=r"worker processes died 3 times .*tasks running then"):
        run_tasks("local:2", die_always, [lambda: 1], ["t1"], retries=2)


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(
        ExecutorError, match=r"cannot reach the dask scheduler at tcp://127\.0\.0\.1:9"
    ):
        run_tasks("dask://127.0.0.1:9", square, [lambda: 2], ["t"])


# -- curves: serial against a process pool and a LocalCluster -------------------------------


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one dataset of 2 LLMs x 3 verifiers (6 pairs), nothing cached."""
    folder = tmp_path_factory.mktemp("study")
    frame = make_long_frame(
        n_problems=40, n_samples=8, llms=("m1", "m2"), verifiers=("v1", "v2", "v3"), seed=3
    )
    path = write_long_parquet(frame, folder / "study.parquet")
    with Store(folder / "base.duckdb") as s:
        import_path(s, path, name="study")
    return folder / "base.duckdb"


def _copy(db: Path, to: Path) -> Path:
    to.write_bytes(db.read_bytes())
    return to


def _payloads(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    with Store(db) as s:
        info = s.get_dataset("study")
        out = {}
        for m, v in info.pairs:
            key = curves_cache_params(info, m, v, STRATEGIES, CONFIG)
            assert s.has_cached(info, "pair_curves", key), (m, v)
            payload, hit = s.cached(info, "pair_curves", key, lambda: {})
            assert hit
            out[(m, v)] = payload
    return out


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=True), k
        else:
            assert a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]), k


def _run(db: Path, executor: str, log: RunLog | None = None, **kw: Any) -> int:
    with Store(db) as s:
        info: DatasetInfo = s.get_dataset("study")
        done = precompute_curves(
            s, info, info.pairs, STRATEGIES, CONFIG, executor, run_log=log, **kw
        )
        return len(done)


@pytest.fixture(scope="module")
def serial(
    study: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], dict[str, Any]]:
    db = _copy(study, tmp_path_factory.mktemp("serial") / "s.duckdb")
    assert _run(db, "serial") == 6
    assert _run(db, "serial") == 0  # all cached now
    return _payloads(db)


def test_serial_precompute_equals_pair_curves(study: Path, serial: dict, tmp_path: Path) -> None:
    db = _copy(study, tmp_path / "p.duckdb")
    with Store(db) as s:
        info = s.get_dataset("study")
        for m, v in info.pairs:
            res = pair_curves(s, info, m, v, STRATEGIES, CONFIG)
            assert not res.from_cache
    got = _payloads(db)
    for pair in serial:
        _same(serial[pair], got[pair])


def test_local_pool_curves_equal_serial_bit_for_bit(
    study: Path, serial: dict, tmp_path: Path
) -> None:
    db = _copy(study, tmp_path / "l.duckdb")
    ticks: list[tuple[int, int]] = []
    assert _run(db, "local:2", progress=lambda _s, d, n: ticks.append((d, n))) == 6
    assert ticks[-1] == (6, 6)
    got = _payloads(db)
    for pair in serial:
        _same(serial[pair], got[pair])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    import distributed

    work = tmp_path_factory.mktemp("dask")
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        local_directory=str(work),
        dashboard_address=None,
        silence_logs=40,
    ) as c:
        yield c


def test_local_cluster_curves_equal_serial_bit_for_bit(
    study: Path, serial: dict, cluster: Any, tmp_path: Path
) -> None:
    db = _copy(study, tmp_path / "d.duckdb")
    address = cluster.scheduler_address.removeprefix("tcp://")
    log = RunLog()
    assert _run(db, f"dask://{address}", log) == 6
    assert log.retried == [] and log.lost_workers == []
    got = _payloads(db)
    for pair in serial:
        _same(serial[pair], got[pair])


@pytest.fixture(scope="module")
def study_parquet(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same study kept as partitioned Parquet files (same content: same cache keys)."""
    folder = tmp_path_factory.mktemp("study_pq")
    frame = make_long_frame(
        n_problems=40, n_samples=8, llms=("m1", "m2"), verifiers=("v1", "v2", "v3"), seed=3
    )
    path = write_long_parquet(frame, folder / "study.parquet")
    with Store(folder / "pq.duckdb") as s:
        info = import_path(s, path, name="study", storage="parquet").info
        assert info.storage == "parquet"
        assert (
            info.content_sha256 == Store(study, read_only=True).get_dataset("study").content_sha256
        )
    return folder / "pq.duckdb"


def test_tasks_of_parquet_pairs_carry_files_and_read_the_same_arrays(study_parquet: Path) -> None:
    with Store(study_parquet) as s:
        info = s.get_dataset("study")
        source = pair_source(s, info, "m1", "v2")
        assert isinstance(source, PairFiles)
        assert {(p.llm, p.verifier) for p in source.parts} == {("m1", "v2")}
        got, want = materialize(source), load_pair(s, info, "m1", "v2")
        for field in ("offsets", "cluster", "score", "correct", "sample_idx", "n_tokens"):
            assert np.array_equal(getattr(got, field), getattr(want, field)), field
        assert got.orientation == want.orientation and got.problem_ids == want.problem_ids


def test_parquet_pairs_on_a_pool_and_a_cluster_equal_the_table_serial_run(
    study_parquet: Path, serial: dict, cluster: Any, tmp_path: Path
) -> None:
    address = cluster.scheduler_address.removeprefix("tcp://")
    for executor in ("local:2", f"dask://{address}"):
        db = _copy(study_parquet, tmp_path / "pq.duckdb")
        assert _run(db, executor) == 6
        got = _payloads(db)
        for pair in serial:
            _same(serial[pair], got[pair])


def test_local_cluster_survives_a_killed_worker(
    study: Path, serial: dict, cluster: Any, tmp_path: Path
) -> None:
    from distributed import Client

    db = _copy(study, tmp_path / "k.duckdb")
    address = cluster.scheduler_address.removeprefix("tcp://")
    with Client(cluster.scheduler_address, set_as_default=False) as client:
        pids = client.run(os.getpid)
        assert len(pids) == 2
        killed = threading.Event()

        def kill_a_busy_worker() -> None:
            """Kill the first worker seen running a task (polled from the start)."""
            end = time.monotonic() + 120
            while time.monotonic() < end and not killed.is_set():
                busy = [w for w, keys in client.processing().items() if keys and w in pids]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        log = RunLog()
        assert _run(db, f"dask://{address}", log) == 6
        killer.join(timeout=5)
    assert killed.is_set()
    assert log.lost_workers, "the killed worker is reported"
    assert "left the cluster" in log.notes()[-1]
    got = _payloads(db)
    assert set(got) == set(serial)
    for pair in serial:
        _same(serial[pair], got[pair])


def test_cli_executor_prints_what_the_serial_run_prints(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    args = ["curves", "study", "--quiet", "--subsets", "40", "--strategy", "logit_wv"]
    db = _copy(study, tmp_path / "cli.duckdb")
    assert main(["--db", str(db), *args, "--executor", "ral:2"]) == 1
    assert "unknown executor 'ral:2'" in capsys.readouterr().err
    assert main(["--db", str(db), *args]) == 0
    serial_out = capsys.readouterr().out
    db2 = _copy(study, tmp_path / "cli2.duckdb")
    assert main([*args, "--executor", "local:2", "--db", str(db2)]) == 0  # after the verb
    pooled_out = capsys.readouterr().out
    assert serial_out.count("== m") == 6 and "(cached)" not in pooled_out
    assert pooled_out == serial_out
    assert "TTSLAB_EXECUTOR" not in os.environ  # the option ends with its command


def test_cli_stopping_on_a_pool_prints_what_the_serial_run_prints(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    args = ["stopping", "study", "--llm", "m1", "--quiet", "--subsets", "40"]
    db = _copy(study, tmp_path / "stop.duckdb")
    assert main(["--db", str(db), *args]) == 0
    serial_out = capsys.readouterr().out
    db2 = _copy(study, tmp_path / "stop2.duckdb")
    assert main(["--db", str(db2), "--executor", "local:2", *args]) == 0
    pooled_out = capsys.readouterr().out
    assert serial_out.count("m1") >= 3 and pooled_out == serial_out
    with Store(db2) as s:
        assert s.cache_kinds().get("stopping") == 3  # computed by the pool, one per pair


def test_transfer_columns_on_a_pool_equal_the_serial_cells(study: Path, tmp_path: Path) -> None:
    from core.studies.transfer import PairRef, cell_key, precompute_transfer, transfer_cells

    refs = [PairRef("study", m, v) for m, v in (("m1", "v1"), ("m2", "v2"))]

    def cells(db: Path, executor: str | None) -> dict[tuple[int, int], Any]:
        with Store(db) as s:
            info = s.get_dataset("study")
            pairs = [(info, r) for r in refs]
            if executor is not None:
                log = RunLog()
                done = precompute_transfer(
                    s, pairs, pairs, "logit_wv", "majority", 8, CONFIG, executor, run_log=log
                )
                assert done == {0, 1} and log.retried == []
                for i, (_, s_ref) in enumerate(pairs):  # every cell is in the cache now
                    for t_ref in refs:
                        key = cell_key(info, s_ref, t_ref, "logit_wv", "majority", 8, CONFIG)
                        assert s.has_cached(info, "transfer_cell", key), (i, t_ref)
            out = transfer_cells(s, pairs, pairs, "logit_wv", "majority", 8, CONFIG)
            assert all(c.from_cache == (executor is not None) for c in out.values())  # type: ignore[union-attr]
            return out

    serial = cells(_copy(study, tmp_path / "t1.duckdb"), None)
    pooled = cells(_copy(study, tmp_path / "t2.duckdb"), "local:2")
    assert serial.keys() == pooled.keys() and len(serial) == 4
    for k in serial:
        a, b = serial[k], pooled[k]
        assert (a.accuracy, a.baseline_accuracy, a.gain, a.low, a.high, a.budget, a.shared) == (  # type: ignore[union-attr]
            b.accuracy,
            b.baseline_accuracy,
            b.gain,
            b.low,
            b.high,
            b.budget,
            b.shared,  # type: ignore[union-attr]
        ), k


def test_cli_transfer_on_a_pool_prints_what_the_serial_run_prints(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.cli import main

    args = [
        "transfer", "--source", "study/m2/v2",
        "--target", "study/m2/v1", "--target", "study/m1/v3", "--subsets", "40",
    ]  # fmt: skip
    assert main(["--db", str(_copy(study, tmp_path / "a.duckdb")), *args]) == 0
    serial_out = capsys.readouterr().out
    db2 = _copy(study, tmp_path / "b.duckdb")
    assert main(["--db", str(db2), *args, "--executor", "local:2"]) == 0
    assert capsys.readouterr().out == serial_out
    with Store(db2) as s:
        assert s.cache_kinds().get("transfer_cell") == 2


def test_transfer_view_runs_on_the_dashboards_executor(
    study: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's Transfer page calls `transfer_view` with no executor: it takes
    ``TTSLAB_EXECUTOR``, computes the columns there, and shows the serial numbers."""
    from core.info.transfer import transfer_view
    from core.studies.transfer import PairRef

    refs = [PairRef("study", m, v) for m, v in (("m1", "v1"), ("m2", "v2"), ("m1", "v3"))]
    with Store(_copy(study, tmp_path / "s.duckdb")) as s:
        serial = transfer_view(s, refs[:2], refs, "logit_wv", "majority", 8, CONFIG)
        assert s.cache_kinds().get("transfer_cell") == 6
    monkeypatch.setenv("TTSLAB_EXECUTOR", "local:2")
    import core.info.transfer as info_transfer

    computed: list[set[int]] = []
    real = info_transfer.precompute_transfer

    def spy(*a: Any, **k: Any) -> set[int]:
        computed.append(real(*a, **k))
        return computed[-1]

    monkeypatch.setattr(info_transfer, "precompute_transfer", spy)
    with Store(_copy(study, tmp_path / "p.duckdb")) as s:
        log = RunLog()
        pooled = transfer_view(s, refs[:2], refs, "logit_wv", "majority", 8, CONFIG, run_log=log)
        assert s.cache_kinds().get("transfer_cell") == 6 and log.retried == []
    assert computed == [{0, 1, 2}], "every target column was a task on the pool"
    assert np.isfinite(serial.gain).all()
    for name in ("accuracy", "gain", "low", "high", "baseline_accuracy"):
        np.testing.assert_array_equal(getattr(serial, name), getattr(pooled, name), name)
