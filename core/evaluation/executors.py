"""Where independent analysis tasks run: in this process, in a local process pool, or on
a Dask cluster, all behind the standard `concurrent.futures.Executor` interface (a Ray
pool, or any other executor, can be added as one more spec).

Specs (the CLI's ``--executor``, the dashboard's ``TTSLAB_EXECUTOR``):

* ``serial`` (default): in the calling process, as before;
* ``local`` / ``local:N``: N worker processes on this machine (default: one per core);
* ``dask://HOST:PORT``: the workers of a running ``dask scheduler`` (dask.distributed).

`run_tasks` runs one function over many small tasks with a bounded number in flight,
counts finished tasks for a progress bar, and retries a task that failed or whose worker
was lost (a killed local process breaks the whole pool, which is rebuilt); a task that
still fails after its retries is an error naming it, never silently dropped. Each task
returns a small result, and the same task gives the same result wherever it runs, so a
distributed run reproduces the serial one bit for bit.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from core.types import TTSLabError

T = TypeVar("T")
R = TypeVar("R")

#: Environment variable naming the executor the dashboard (and a CLI run without
#: ``--executor``) uses.
EXECUTOR_ENV_VAR = "TTSLAB_EXECUTOR"
#: Times a failed or lost task is submitted again before the run stops with its error.
DEFAULT_RETRIES = 2
#: seconds to reach a dask scheduler before the run is an error
CONNECT_TIMEOUT_S = 10.0

_SPEC = re.compile(r"^(serial|local(?::(\d+))?|dask://([^\s/]+:\d+))$")


class ExecutorError(TTSLabError):
    """An executor spec is malformed, its cluster cannot be reached, or a task failed
    after its retries."""


@dataclass(frozen=True)
class ExecutorSpec:
    kind: str  # "serial" | "local" | "dask"
    workers: int = 1  # local: processes
    address: str = ""  # dask: scheduler address (tcp://HOST:PORT)

    @property
    def text(self) -> str:
        if self.kind == "local":
            return f"local:{self.workers}"
        if self.kind == "dask":
            return "dask://" + self.address.removeprefix("tcp://")
        return "serial"


def parse_executor(spec: str | None) -> ExecutorSpec:
    """Parse an executor spec (None or "": `TTSLAB_EXECUTOR`, else serial)."""
    text = (spec or os.environ.get(EXECUTOR_ENV_VAR) or "serial").strip()
    m = _SPEC.match(text)
    if m is None:
        raise ExecutorError(
            f"unknown executor {text!r}: use serial, local, local:N (N worker processes) "
            "or dask://HOST:PORT (a running dask scheduler)"
        )
    if text == "serial":
        return ExecutorSpec("serial")
    if text.startswith("local"):
        n = int(m.group(2)) if m.group(2) else (os.cpu_count() or 1)
        if n < 1:
            raise ExecutorError(f"executor {text!r}: at least 1 worker process")
        return ExecutorSpec("local", workers=n)
    return ExecutorSpec("dask", address="tcp://" + m.group(3))


class _Pool:
    """A concurrent.futures executor that can be rebuilt after a lost worker."""

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        self.client: Any = None
        self.executor: Executor = self._make()

    def _make(self) -> Executor:
        if self.spec.kind == "local":
            ctx = multiprocessing.get_context("spawn")  # never fork a process holding DuckDB
            # as many processes as cores: each runs the engine's kernel in one thread
            one = self.spec.workers >= (os.cpu_count() or 1)
            return ProcessPoolExecutor(
                max_workers=self.spec.workers,
                mp_context=ctx,
                initializer=_one_kernel_thread if one else None,
            )
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ExecutorError("the dask executor needs the 'distributed' package") from exc
        try:
            self.client = Client(  # type: ignore[no-untyped-call]
                self.spec.address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False
            )
        except OSError as exc:
            raise ExecutorError(
                f"cannot reach the dask scheduler at {self.spec.address}: {exc}"
            ) from exc
        # pure=False: a retried task gets a new key and really runs again
        executor: Executor = self.client.get_executor(pure=False)
        return executor

    def _nthreads(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.client.nthreads().items()}

    @property
    def slots(self) -> int:
        """Tasks worth keeping in flight: two per worker thread."""
        if self.spec.kind == "local":
            return 2 * self.spec.workers
        return 2 * max(1, sum(self._nthreads().values()))

    def workers(self) -> set[str]:
        return set(self._nthreads()) if self.client is not None else set()

    def rebuild(self) -> None:
        if self.spec.kind == "local":
            self._stop_local()
            self.executor = self._make()

    def _stop_local(self) -> None:
        """Stop a local pool now: queued tasks cancelled, running worker processes ended."""
        processes = dict(getattr(self.executor, "_processes", None) or {})
        self.executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes.values():
            if proc.is_alive():
                proc.terminate()

    def close(self, failed: bool) -> None:
        if self.client is not None:
            self.executor.shutdown(wait=False)  # dask's executor knows no cancel_futures
            self.client.close()
        elif failed:
            self._stop_local()  # never wait for the other tasks of a failed run
        else:
            self.executor.shutdown(wait=True)


@dataclass
class RunLog:
    """What happened to the tasks of a run beyond plain success."""

    retried: list[str] = field(default_factory=list)  # "task: why"
    lost_workers: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        out = [f"retried {r}" for r in self.retried]
        if self.lost_workers:
            out.append(
                f"{len(self.lost_workers)} worker(s) left the cluster during the run "
                f"({', '.join(sorted(self.lost_workers))}); their tasks were run again"
            )
        return out


@dataclass
class TaskRunner(Generic[T, R]):
    """Runs `fn` over tasks on an executor spec; see `run_tasks`."""

    spec: ExecutorSpec
    retries: int = DEFAULT_RETRIES
    log: RunLog = field(default_factory=RunLog)

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[Callable[[], T]],
        labels: Sequence[str],
        *,
        on_done: Callable[[int, R], None] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[R]:
        """Results of ``fn(tasks[i]())`` in task order. A task is built (its thunk called)
        only when it is submitted, so at most a few tasks' inputs are in memory at once.
        ``on_done(i, result)`` is called in this thread as each finishes, and
        ``progress(finished, total)`` after each. An analysis error of a task (a
        `TTSLabError`: the data, not the machine) is not retried; it ends the run, named
        by the task's label."""
        total = len(tasks)
        results: dict[int, R] = {}
        if progress is not None:
            progress(0, total)
        if self.spec.kind == "serial":
            for i, make in enumerate(tasks):
                try:
                    results[i] = fn(make())
                except TTSLabError as exc:
                    raise ExecutorError(f"{labels[i]}: {exc}") from exc
                if on_done is not None:
                    on_done(i, results[i])
                if progress is not None:
                    progress(i + 1, total)
            return [results[i] for i in range(total)]
        with _pooled(self.spec) as pool:
            seen = pool.workers()
            attempts = [0] * total
            breakages = 0
            inputs: dict[int, T] = {}
            queue = list(range(total))
            queue.reverse()
            running: dict[Future[R], int] = {}
            slots = pool.slots

            def finished(i: int, res: R) -> None:
                results[i] = res
                inputs.pop(i, None)
                if on_done is not None:
                    on_done(i, res)
                if progress is not None:
                    progress(len(results), total)

            while queue or running:
                broken = False
                while queue and len(running) < slots and not broken:
                    i = queue.pop()
                    if i not in inputs:
                        inputs[i] = tasks[i]()
                    try:
                        running[pool.executor.submit(fn, inputs[i])] = i
                    except BrokenProcessPool:
                        queue.append(i)
                        broken = True
                if not broken:
                    done, _ = wait(list(running), timeout=1.0, return_when=FIRST_COMPLETED)
                    seen |= pool.workers()
                    for fut in done:
                        i = running.pop(fut)
                        err = fut.exception()
                        if err is None:
                            finished(i, fut.result())
                        elif isinstance(err, BrokenProcessPool):
                            running[fut] = i  # handled with the others below
                            broken = True
                        elif isinstance(err, TTSLabError):
                            raise ExecutorError(f"{labels[i]}: {err}") from err
                        else:
                            self._retry(i, labels[i], attempts, err, queue)
                if broken:
                    # a worker process died and took the pool with it: keep what finished,
                    # run the rest again (no task is blamed: any of them may have been
                    # the one running in the dead process)
                    breakages += 1
                    lost = []
                    for fut, i in running.items():
                        if fut.done() and not fut.cancelled() and fut.exception() is None:
                            finished(i, fut.result())
                        else:
                            lost.append(i)
                            queue.append(i)
                    running.clear()
                    if breakages > self.retries:
                        shown = ", ".join(labels[i] for i in sorted(lost)[:5])
                        raise ExecutorError(
                            f"worker processes died {breakages} times on {self.spec.text}; "
                            f"tasks running then: {shown}"
                        )
                    self.log.retried += [f"{labels[i]} (its worker process died)" for i in lost]
                    pool.rebuild()
            self.log.lost_workers = sorted(seen - pool.workers()) if pool.client else []
        return [results[i] for i in range(total)]

    def _retry(
        self, i: int, label: str, attempts: list[int], exc: BaseException, queue: list[int]
    ) -> None:
        attempts[i] += 1
        why = _why(exc)
        if attempts[i] > self.retries:
            raise ExecutorError(
                f"task {label} failed {attempts[i]} times on {self.spec.text}; last: {why}"
            ) from exc
        self.log.retried.append(f"{label} ({why})")
        queue.insert(0, i)  # after the others: a flaky worker may be gone by then


def _why(exc: BaseException) -> str:
    if isinstance(exc, BrokenProcessPool):
        return "its worker process died"
    name = type(exc).__name__
    if name == "KilledWorker":
        return "its workers died"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def _one_kernel_thread() -> None:
    """Worker start-up: the engine's subset kernel in one thread."""
    from core.evaluation import engine

    engine.KERNEL_THREADS = 1


@contextmanager
def _pooled(spec: ExecutorSpec) -> Iterator[_Pool]:
    pool = _Pool(spec)
    failed = True
    try:
        yield pool
        failed = False
    finally:
        pool.close(failed)


def run_tasks(
    spec: ExecutorSpec | str | None,
    fn: Callable[[T], R],
    tasks: Sequence[Callable[[], T]],
    labels: Sequence[str],
    *,
    on_done: Callable[[int, R], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    retries: int = DEFAULT_RETRIES,
) -> tuple[list[R], RunLog]:
    """Run ``fn`` over tasks (thunks building each task's input) on an executor; return
    the results in task order and the log of retries and lost workers."""
    parsed = spec if isinstance(spec, ExecutorSpec) else parse_executor(spec)
    runner: TaskRunner[T, R] = TaskRunner(parsed, retries=retries)
    out = runner.run(fn, tasks, labels, on_done=on_done, progress=progress)
    return out, runner.log


__all__ = [
    "DEFAULT_RETRIES",
    "EXECUTOR_ENV_VAR",
    "ExecutorError",
    "ExecutorSpec",
    "RunLog",
    "parse_executor",
    "run_tasks",
]
