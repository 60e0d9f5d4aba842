"""`ttslab`: the command-line face of TTS Aggregation Lab."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from core.access import (
    EDITORS_ENV,
    READ_ONLY_ENV,
    USER_HEADER_ENV,
    add_editor,
    read_editors,
)
from core.evaluation import EvalConfig, fit_pair, pair_curves
from core.evaluation.executors import EXECUTOR_ENV_VAR, RunLog, parse_executor
from core.evaluation.pipeline import precompute_curves
from core.grading import GRADE_WORKERS_ENV
from core.importers import (
    FORMAT_HELP,
    LONG_COLUMNS,
    READERS,
    ImportResult,
    ImportValidationError,
    import_path,
)
from core.importers.inplace import register_in_place
from core.info import (
    Issue,
    calibrate_table,
    combine_view,
    compare_view,
    parse_llm_params,
    sample_issues,
    transfer_view,
)
from core.methods import (
    StrategyParams,
    calibrated_strategies,
    default_strategies,
    display_label,
    get_strategy,
    load_plugins,
    strategy_names,
)
from core.methods.registry import PLUGINS_ENV_VAR
from core.reports import (
    calibration_text,
    compare_latex,
    describe_intervals,
    efficiency_text,
    issue_text,
    saving_text,
    stopping_curves_frame,
)
from core.store import (
    DB_ENV_VAR,
    IMPORTED_FORMAT,
    PARQUET_MIN_SCORES,
    PROJECT_ROOT,
    STORAGES,
    DatasetInfo,
    Store,
    StoreError,
    default_db_path,
)
from core.studies.allocation import pair_allocation
from core.studies.transfer import PairRef, precompute_transfer
from core.synth.demo import DEMO_NAME, build_demo
from core.types import (
    OFFSET_OBJECTIVES,
    ORDERS,
    ORIENTATIONS,
    REDUCTIONS,
    TIE_BREAKS,
    TRANSFORMS,
    TTSLabError,
)


class _Bar:
    """Adapts tqdm to the (stage, done, total) progress callbacks of core."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self._bar: tqdm[Any] | None = None
        self._desc = desc
        self._enabled = enabled

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            self._bar = tqdm(
                total=total, desc=self._desc, unit="step", file=sys.stderr, leave=False
            )
        self._bar.set_postfix_str(stage)
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _store(args: argparse.Namespace, read_only: bool = False) -> Store:
    """The database, held only while used: a running dashboard (or another command) can
    read and write between uses, and a use waits for another process's transaction."""
    return Store(args.db, read_only=read_only, shared=True)


def cmd_import(args: argparse.Namespace) -> int:
    bar = _Bar(f"import {Path(args.path).name}", not args.quiet)
    if args.in_place:
        refused = [
            flag
            for flag, value in (
                ("--format", args.format != "auto"),
                ("--llm", args.llm),
                ("--verifier", args.verifier),
                ("--include", args.include),
                ("--complete-records-only", args.complete_records_only),
                ("--storage", args.storage != "auto"),
                ("--time-limit", args.time_limit),
                ("--cpu-limit", args.cpu_limit),
            )
            if value
        ]
        if refused:
            print(
                f"error: --in-place registers the folder's files as they are; "
                f"{', '.join(refused)} cannot apply",
                file=sys.stderr,
            )
            return 2
    with _store(args) as store:
        try:
            if args.in_place:
                info, files, notes = register_in_place(
                    store,
                    args.path,
                    name=args.name,
                    replace=args.replace,
                    iid=not args.not_iid,
                    progress=bar,
                    lower_is_better=args.lower_is_better or (),
                    higher_is_better=args.higher_is_better or (),
                )
                res = ImportResult(info, tuple(files), info.source_format, tuple(notes))
            else:
                res = import_path(
                    store,
                    args.path,
                    name=args.name,
                    fmt=args.format,
                    replace=args.replace,
                    iid=not args.not_iid,
                    progress=bar,
                    complete_records_only=args.complete_records_only,
                    llm=args.llm,
                    verifier=args.verifier,
                    include=args.include,
                    lower_is_better=args.lower_is_better or (),
                    higher_is_better=args.higher_is_better or (),
                    time_limit_s=args.time_limit,
                    cpu_limit_s=args.cpu_limit,
                    storage=args.storage,
                )
        except KeyboardInterrupt:
            bar.close()
            print("interrupted: nothing was imported", file=sys.stderr)
            return 130
        finally:
            bar.close()
    print(res.summary())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    path = Path(args.db) if args.db else default_db_path()
    if not path.exists():
        print(f"no database at {path} yet: run `ttslab demo` or `ttslab import FILE`")
        return 0
    with _store(args, read_only=True) as store:
        df = store.datasets_frame()
    if df.empty:
        print("the store is empty: run `ttslab demo` or `ttslab import FILE`")
    else:
        # to the minute, as the dashboard shows it (microseconds pushed the table past
        # the width, so it was printed in two blocks); no "kind" column: the source
        # "simulator" says it (the full-size demo's row was 103 columns wide)
        df["imported"] = df["imported"].dt.strftime(IMPORTED_FORMAT)
        if not getattr(args, "wide", False):
            df = df.drop(columns=["kind"])
        print(_render(df, args, index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _store(args, read_only=True) as store:
        info = store.get_dataset(args.name)
        pairs = store.pair_summary(info)
    kind = "SIMULATED benchmark" if info.simulated else "real data"
    print(f"{info.name}  [{kind}]")
    print(f"  id {info.dataset_id}, format {info.source_format}, imported {info.imported}")
    print(f"  source {info.source_path or '-'}")
    print(f"  {info.n_problems} problems, {info.n_responses} responses, {info.n_scores} scores")
    if info.storage == "parquet":
        print("  score rows: Parquet files partitioned by LLM and verifier, beside the database")
    elif info.storage == "in-place":
        print(f"  score rows: registered in place, read from {info.source_path}")
    print(f"  samples are {'independent draws' if info.iid else 'ordered groups (not iid)'}")
    if info.lower_is_better or info.higher_is_better:
        declared = [f"{v}: lower is better" for v in info.lower_is_better] + [
            f"{v}: higher is better" for v in info.higher_is_better
        ]
        print(f"  declared directions: {'; '.join(declared)} (others: estimated per analysis)")
    print(f"  correctness: {info.grader or '-'}; sha256 {info.content_sha256[:16]}...")
    if info.notes:
        print(f"  notes: {info.notes}")
    print()
    print(_render(pairs, args, index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with _store(args) as store:
        info = store.get_dataset(args.name)
        if not args.yes:
            if not sys.stdin.isatty():
                print(
                    f"refusing to delete {info.name!r} without --yes (no terminal to ask)",
                    file=sys.stderr,
                )
                return 2
            answer = input(f"delete {info.name!r} ({info.n_responses} responses)? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("kept")
                return 1
        store.delete_dataset(info)
    print(f"deleted {info.name!r}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    with _store(args) as store:
        if store.has_dataset(args.name) and not args.replace:
            if args.if_missing:
                print(f"{args.name!r} is already in {store.path}")
                return 0
            print(f"{args.name!r} exists; pass --replace to rebuild it", file=sys.stderr)
            return 2
        bar = _Bar("demo", not args.quiet)
        try:
            build_demo(
                store,
                seed=args.seed,
                n_problems=args.problems,
                n_samples=args.samples,
                replace=args.replace,
                name=args.name,
                progress=bar,
            )
        finally:
            bar.close()
        info = store.get_dataset(args.name)
    print(
        f"built {info.name!r}: {info.n_problems} problems, {info.n_responses} responses, "
        f"{len(info.llms)} LLMs x {len(info.verifiers)} verifiers (SIMULATED) in "
        f"{args.db or default_db_path()}"
    )
    return 0


def serve_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The Streamlit command line and environment of `ttslab serve`."""
    env = dict(os.environ)
    if getattr(args, "plugins", None):
        env[PLUGINS_ENV_VAR] = ",".join(args.plugins)  # the dashboard loads the same
    if args.db:
        env[DB_ENV_VAR] = str(Path(args.db).resolve())
    env.pop(READ_ONLY_ENV, None)
    env.pop(EDITORS_ENV, None)
    env.pop(USER_HEADER_ENV, None)
    if args.read_only:
        env[READ_ONLY_ENV] = "1"
    if args.editors_file:
        editors = Path(args.editors_file).resolve()
        read_editors(editors)  # a clear error now rather than in the first visitor's page
        env[EDITORS_ENV] = str(editors)
    if args.user_header:
        env[USER_HEADER_ENV] = args.user_header
    # grading an upload leaves a core for serving the other visitors
    env.setdefault(GRADE_WORKERS_ENV, str(max(1, (os.cpu_count() or 2) - 1)))
    app = PROJECT_ROOT / "dashboard" / "app.py"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.address,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--server.maxUploadSize",
        str(args.max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        # Streamlit runs a full collection (gc.collect(2)) after every script run, holding
        # the interpreter lock while the run's last message waits to be sent: 150-170 ms
        # of every interaction on the demo, with the dashboard's caches in memory. Python's
        # own generational collector still frees cycles (bench/RESULTS.md).
        "--runner.postScriptGC",
        "false",
    ]
    return cmd, env


def cmd_serve(args: argparse.Namespace) -> int:
    cmd, env = serve_command(args)
    db = env.get(DB_ENV_VAR) or default_db_path()
    mode = (
        "read-only"
        if args.read_only
        else "editors only"
        if args.editors_file or args.user_header
        else "anyone can edit"
    )
    host = "localhost" if args.address in ("127.0.0.1", "localhost") else args.address
    print(f"dashboard on http://{host}:{args.port}  (database {db}; {mode})", flush=True)
    # the server replaces this process, so SIGTERM / SIGINT from a service manager reach it
    # directly and nothing is left serving the port
    os.execve(sys.executable, cmd, env)
    return 0  # not reached


def cmd_add_editor(args: argparse.Namespace) -> int:
    token = add_editor(args.file, args.name)
    print(f"added editor {args.name!r} to {args.file}; their token (shown once):\n{token}")
    return 0


def _pairs(info: DatasetInfo, args: argparse.Namespace) -> list[tuple[str, str]]:
    llms = [args.llm] if args.llm else list(info.llms)
    vers = [args.verifier] if args.verifier else list(info.verifiers)
    for m in llms:
        if m not in info.llms:
            raise StoreError(f"dataset {info.name!r} has no LLM {m!r}; LLMs: {list(info.llms)}")
    for v in vers:
        if v not in info.verifiers:
            raise StoreError(
                f"dataset {info.name!r} has no verifier {v!r}; verifiers: {list(info.verifiers)}"
            )
    return [(m, v) for m in llms for v in vers]


def _config(args: argparse.Namespace) -> EvalConfig:
    """The one evaluation config, from the analysis options of any command."""
    bw: str | float = args.bandwidth
    if bw not in ("scott", "silverman"):
        try:
            bw = float(bw)
        except ValueError:
            raise TTSLabError(
                f"--bandwidth must be scott, silverman or a number, got {bw!r}"
            ) from None
    params = StrategyParams(
        transform=args.transform,
        orientation=args.orientation,
        bandwidth=bw,  # type: ignore[arg-type]
        offset_budget=args.offset_budget,
        offset_objective=args.offset_objective,
    )
    return EvalConfig(
        params=params,
        reduction=getattr(args, "reduction", "stored"),
        folds=getattr(args, "folds", 5),
        budgets=tuple(args.budgets) if getattr(args, "budgets", None) else None,
        n_subsets=getattr(args, "subsets", 200),
        subset_seed=getattr(args, "seed", 0),
        order=getattr(args, "order", "auto"),
        tie_break=getattr(args, "tie_break", "fractional"),
        calibration=getattr(args, "calibration", "labels"),
    )


def _check_strategies(names: Sequence[str] | None) -> None:
    for n in names or ():
        get_strategy(n)  # a clear error naming the registered strategies


#: Tables fit this many columns unless --wide (pandas wraps the columns into blocks).
TABLE_WIDTH = 100


def _render(df: Any, args: argparse.Namespace, **kw: Any) -> str:
    """A table as text, at most TABLE_WIDTH columns wide (unless --wide)."""
    width = None if getattr(args, "wide", False) else TABLE_WIDTH
    return str(df.to_string(line_width=width, **kw))


def _write_csv(frames: list[Any], path: str | None) -> None:
    if path and frames:
        import pandas as pd

        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        print(f"wrote {path}")


class _Wrapped:
    """Standard output with prose lines longer than TABLE_WIDTH wrapped (tables are
    rendered to fit already, so a longer line is a sentence); continuation lines are
    indented under the first."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._pending = ""

    def write(self, text: str) -> int:
        import textwrap

        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if len(line) > TABLE_WIDTH:
                lead = " " * (len(line) - len(line.lstrip()))
                line = textwrap.fill(
                    line, width=TABLE_WIDTH, subsequent_indent=lead + "  ", break_on_hyphens=False
                )
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self.stream.write(self._pending)
            self._pending = ""
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _issues(issues: Sequence[Issue]) -> None:
    for issue in issues:
        print(f"note: {issue_text(issue)}")


def cmd_calibrate(args: argparse.Namespace) -> int:
    _check_strategies(args.strategy)
    strategies = args.strategy or list(calibrated_strategies())
    config = _config(args)
    frames = []
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        pairs = _pairs(info, args)
        for m, v in tqdm(
            pairs, desc="calibrating", file=sys.stderr, disable=args.quiet, leave=False
        ):
            df = calibrate_table(store, info, m, v, strategies, config)
            df["negative score range"] = [describe_intervals(x) for x in df["negative_intervals"]]
            df = df.drop(columns=["negative_intervals"])
            frames.append(df)
            labels = "" if config.calibration == "labels" else f"; labels: {config.calibration}"
            print(f"\n== {m} x {v} (fitted on all problems; reduction {config.reduction}{labels})")
            print(_render(df.drop(columns=["llm", "verifier"]), args, index=False))
    _write_csv(frames, args.csv)
    return 0


_T = TypeVar("_T")


def _on_executor(
    args: argparse.Namespace,
    run: Callable[[_Bar, RunLog], set[_T]],
) -> set[_T]:
    """On a non-serial executor (``--executor`` / ``$TTSLAB_EXECUTOR``): fill the result
    cache with `run` (a ``precompute_*`` call) under a task-count bar, print its retries
    and lost workers, and return the pairs it computed; serially nothing (the command's
    own loop computes)."""
    if parse_executor(None).kind == "serial":
        return set()
    run_log = RunLog()
    bar = _Bar("tasks", not args.quiet)
    try:
        computed = run(bar, run_log)
    finally:
        bar.close()
    for note in run_log.notes():
        print(f"note: {note}")
    return computed


def cmd_curves(args: argparse.Namespace) -> int:
    _check_strategies(args.strategy)
    config = _config(args)
    frames = []
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        strategies = tuple(args.strategy or default_strategies(simulated=info.has_truth))
        pairs = _pairs(info, args)
        computed = _on_executor(
            args,
            lambda bar, log: precompute_curves(
                store, info, pairs, strategies, config, None, progress=bar, run_log=log
            ),
        )
        for m, v in tqdm(pairs, desc="curves", file=sys.stderr, disable=args.quiet, leave=False):
            res = pair_curves(store, info, m, v, strategies, config)
            df = res.to_frame()
            cost_note = ""
            if args.x != "samples":
                df, cost_note = _with_cost(store, info, m, v, config, df, args)
            frames.append(df)
            shown = [s for s in strategies if s in res.curves.strategies]
            column = "budget" if cost_note or args.x == "samples" else "N (cost)"
            wide = df.assign(
                cell=[
                    f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
                    for a, lo, hi in zip(df["accuracy"], df["low"], df["high"], strict=True)
                ]
            ).pivot(index="label", columns=column, values="cell")
            wide = wide.loc[[display_label(s) for s in shown]]
            src = " (cached)" if res.from_cache and (m, v) not in computed else ""
            print(
                f"\n== {m} x {v}: accuracy at N with {round(100 * config.level)}% bootstrap CI "
                f"over problems, {calibration_text(config)}{src}"
            )
            print(_render(wide, args))
            if cost_note:
                print(f"note: {cost_note}")
            for name, why in res.skipped.items():
                if name in strategies:
                    print(f"note: {display_label(name)} could not be fitted ({why})")
            for line in res.notes:
                print(f"note: {line}")
            if "logit_wv" in shown and "vanilla_wv" in shown:
                print(
                    efficiency_text(
                        "logit_wv", "vanilla_wv", res.efficiency("logit_wv", "vanilla_wv")
                    )
                )
            c = res.curves
            for issue in sample_issues(
                f"{m} x {v}", len(c.problem_ids), config.folds, c.budgets, c.n_clipped
            ):
                print(f"warning: {issue_text(issue)}")
    _write_csv(frames, args.csv)
    return 0


def _with_cost(
    store: Store,
    info: DatasetInfo,
    llm: str,
    verifier: str,
    config: EvalConfig,
    df: Any,
    args: argparse.Namespace,
) -> tuple[Any, str]:
    """The curves' long table with the expected tokens (or FLOPs, 2 x parameters x
    tokens) per problem at each budget, and a column naming each budget with its cost; or
    a note saying why that axis is unavailable."""
    from core.evaluation.pipeline import load_pair
    from core.evaluation.stopping import fixed_cost, has_tokens

    pair = load_pair(store, info, llm, verifier, config.reduction)
    if not has_tokens(pair):
        return df, f"{llm} has responses without token counts: no {args.x} axis"
    budgets = sorted(set(int(b) for b in df["budget"]))
    tokens = dict(zip(budgets, fixed_cost(pair, budgets, "tokens").mean(axis=1), strict=True))
    df = df.assign(mean_tokens=df["budget"].map(tokens))
    if args.x == "flops":
        params = parse_llm_params(args.params or ())
        if llm not in params:
            return df, f"no parameter count for {llm}: give --params {llm}=BILLIONS for FLOPs"
        df = df.assign(flops=2.0 * params[llm] * df["mean_tokens"])
        name = {b: f"{b} ({2.0 * params[llm] * t:.2e} FLOPs)" for b, t in tokens.items()}
    else:
        name = {b: f"{b} ({t:,.0f} tok)" for b, t in tokens.items()}
    cols = df["budget"].map(name)
    order = [name[b] for b in budgets]
    import pandas as pd

    return df.assign(**{"N (cost)": pd.Categorical(cols, categories=order, ordered=True)}), ""


def cmd_export_weights(args: argparse.Namespace) -> int:
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        fitted = fit_pair(store, info, args.llm, args.verifier, args.strategy, _config(args))
    text = fitted.to_json(indent=2)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.strategy} weights of ({args.llm}, {args.verifier}) to {args.output}")
    return 0


def _with_budget(
    config: EvalConfig,
    store: Store,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    budget: int,
) -> EvalConfig:
    """The config with `budget` among the evaluated budgets (the usual 1, 2, 4, ... up to
    the pairs' largest problem, plus it), so it is evaluated exactly, never replaced by a
    neighbour. A budget above a problem's samples is evaluated on all of them (noted)."""
    if budget < 1:
        raise StoreError(f"a budget is at least 1 sample, got {budget}")
    if config.budgets is not None:
        return config.with_(budgets=tuple(sorted({*config.budgets, budget})))
    from core.evaluation.engine import default_budgets

    n_max = max(int(store.load_pair(info, m, v).sizes().max()) for m, v in pairs)
    return config.with_(budgets=tuple(sorted({*default_budgets(n_max), budget})))


def cmd_compare(args: argparse.Namespace) -> int:
    _check_strategies(args.strategy)
    strategies = args.strategy or ["vanilla_wv", "logit_wv", "kde_wv"]
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        pairs = _pairs(info, args)
        config = _with_budget(_config(args), store, info, pairs, args.budget)
        bar = _Bar("curves", not args.quiet)
        run_log = RunLog()
        try:
            cv = compare_view(
                store,
                info,
                pairs,
                strategies,
                args.budget,
                args.baseline,
                config,
                progress=bar,
                run_log=run_log,
            )
        finally:
            bar.close()
    for note in run_log.notes():
        print(f"note: {note}")
    print(
        f"accuracy at N={cv.budget} and gain over {display_label(cv.baseline)} "
        f"({round(100 * cv.level)}% paired interval over {cv.n_problems} problems)"
        + (" [SIMULATED]" if cv.simulated else "")
    )
    print(_render(cv.display_frame(), args, index=False, float_format=lambda x: f"{x:.1f}"))
    _issues(cv.issues)
    if args.csv:
        Path(args.csv).write_text(cv.to_csv())
        print(f"wrote {args.csv}")
    if args.latex:
        Path(args.latex).write_text(compare_latex(cv))
        print(f"wrote {args.latex}")
    return 0


def cmd_allocate(args: argparse.Namespace) -> int:
    import pandas as pd

    _check_strategies(args.strategy)
    config = _config(args)
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        variants = {
            f"b for N={n}": replace(config.params, offset_budget=n)
            for n in args.variant_offset_budget or []
        }
        candidates = args.strategy or strategy_names(oracles=False)
        alloc = pair_allocation(
            store,
            info,
            args.llm,
            args.verifier,
            candidates,
            config,
            n_bins=args.bins,
            seed=args.seed,
            variants=variants,
        )
    curves = pd.DataFrame(
        alloc.fixed_curves().T,
        index=pd.Index(alloc.budgets, name="N"),
        columns=[display_label(s) for s in alloc.strategies],
    )
    curves.insert(0, "per-bin choice", alloc.curve())
    print(
        f"== {args.llm} x {args.verifier}: accuracy of choosing the strategy per "
        f"difficulty bin ({args.bins} bins of the mean verifier score, two-fold CV over "
        "problems) vs each fixed strategy"
    )
    print(_render(curves, args, float_format=lambda x: f"{x:.3f}"))
    table = alloc.table()
    print(
        "\nchosen strategy per budget and bin (bin 1 = the predicted hardest: the lowest mean "
        "verifier score, or the highest where lower scores are better; each fold's choice is "
        "made on the other fold)"
    )
    print(
        table.pivot_table(
            index=["budget", "bin"], columns="fold", values="chosen", aggfunc="first"
        ).to_string()
    )
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _refs(values: Sequence[Sequence[str]]) -> list[PairRef]:
    out = []
    for v in values:
        if len(v) == 1:
            out.append(PairRef.parse(v[0]))
        elif len(v) == 3:
            out.append(PairRef(*v))
        else:
            raise TTSLabError(
                f"a pair is DATASET/LLM/VERIFIER or DATASET LLM VERIFIER, got {' '.join(v)!r}"
            )
    return out


def cmd_transfer(args: argparse.Namespace) -> int:
    import pandas as pd

    sources = _refs(args.source)
    targets = _refs(args.target) if args.target else sources
    config = _config(args)
    with _store(args, read_only=args.read_only) as store:

        def with_infos(refs: list[PairRef]) -> list[tuple[DatasetInfo, PairRef]]:
            return [(store.get_dataset(r.dataset), r) for r in refs]

        _on_executor(
            args,
            lambda bar, log: precompute_transfer(
                store,
                with_infos(sources),
                with_infos(targets),
                args.strategy,
                args.baseline,
                args.budget,
                config,
                None,
                progress=bar,
                run_log=log,
            ),
        )
        view = transfer_view(  # reads what the executor computed (serially: computes)
            store,
            sources,
            targets,
            args.strategy,
            args.baseline,
            args.budget,
            config,
            executor="serial",
        )
    df = view.to_frame()
    print(
        f"{view.strategy_label} calibrated on each source, evaluated on each target at "
        f"N={view.budget}: gain over {view.baseline_label} in points "
        f"[{round(100 * view.level)}% paired interval]"
    )
    df["cell"] = [
        f"{100 * g:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]" if not math.isnan(g) else "-"
        for g, lo, hi in zip(df["gain"], df["gain_low"], df["gain_high"], strict=True)
    ]
    print(
        pd.DataFrame(df)
        .pivot(index="calibrated on", columns="evaluated on", values="cell")
        .to_string()
    )
    _issues(view.issues)
    if args.csv:
        df.drop(columns="cell").to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    import pandas as pd

    config = _config(args)
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        view = combine_view(store, info, args.llm, args.verifier, config)
    table = pd.DataFrame(
        [
            [
                f"{view.accuracy[i, b]:.3f} [{view.low[i, b]:.3f}, {view.high[i, b]:.3f}]"
                for b in range(len(view.budgets))
            ]
            for i in range(len(view.strategies))
        ],
        index=list(view.labels),
        columns=list(view.budgets),
    )
    print(
        f"== {args.llm}: signals {', '.join(view.verifiers)} ({config.folds}-fold "
        "cross-fitted; the label-free combiners read no label and are fitted on every "
        f"problem; {round(100 * config.level)}% CI over problems)"
    )
    print(_render(table, args))
    return 0


def cmd_stopping(args: argparse.Namespace) -> int:
    from core.evaluation.stopping import RULES
    from core.info.stopping import stopping_view

    config = _config(args)
    rules = args.rule or list(RULES)
    frames = []
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        pairs = _pairs(info, args)
        from core.studies.stopping import precompute_stopping

        _on_executor(
            args,
            lambda bar, log: precompute_stopping(
                store, info, pairs, rules, config, None, cap=args.cap, progress=bar, run_log=log
            ),
        )
        for m, v in pairs:
            with tqdm(total=1.0, desc=f"{m} x {v}", file=sys.stderr, disable=args.quiet) as bar:

                def progress(
                    stage: str, done: int, total: int, where: str = f"{m} x {v}", bar: Any = bar
                ) -> None:
                    bar.set_description_str(f"{where}: {stage}"[:70])
                    bar.n = done / max(total, 1)
                    bar.refresh()

                view = stopping_view(
                    store,
                    info,
                    m,
                    v,
                    rules,
                    config,
                    cap=args.cap,
                    reference_budget=args.reference_budget,
                    tolerance=args.tolerance / 100.0,
                    progress=progress,
                )
            df = stopping_curves_frame(view)
            frames.append(df)
            shown = df.assign(
                accuracy=[
                    f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
                    for a, lo, hi in zip(df["accuracy"], df["low"], df["high"], strict=True)
                ],
                mean_samples=df["mean_samples"].map(lambda x: f"{x:.1f}"),
                mean_tokens=df["mean_tokens"].map(
                    lambda x: "-" if not math.isfinite(x) else f"{x:,.0f}"
                ),
            )
            print(
                f"\n== {m} x {v}: early stopping over {view.n_problems} problems (cap "
                f"{view.cap} samples; accuracy with {round(100 * view.level)}% bootstrap CI; "
                f"{calibration_text(config)})"
            )
            cols = ["method", "parameter", "mean_samples", "mean_tokens", "accuracy"]
            print(_render(shown[cols], args, index=False))
            labels = {r.rule: r.label for r in view.rules}
            print(
                f"\nat the accuracy of fixed N = {view.reference_budget}, less "
                f"{100 * view.tolerance:g} points (paired bootstrap CI):"
            )
            for sv in view.savings:
                print("  " + saving_text(sv, view.reference_budget, labels[sv.rule]))
            if not view.has_tokens:
                print("note: token counts are missing: no tokens axis")
            _issues(view.issues)
    _write_csv(frames, args.csv)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    # The one command above core: the report is the dashboard's figures written to a file
    # (dashboard.report and what it imports are plain Plotly, never Streamlit).
    from dashboard.report import build_report

    _check_strategies(args.strategy)
    if args.baseline is not None:
        _check_strategies([args.baseline])
    config = _config(args)
    out = Path(args.output)
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        if args.budget is not None:
            config = _with_budget(config, store, info, info.pairs, args.budget)
        bar = _Bar("report", not args.quiet)
        try:
            page = build_report(
                store,
                info,
                config,
                strategies=args.strategy,
                budget=args.budget,
                baseline=args.baseline or "majority",
                weight_kind=args.calibrator,
                progress=bar,
            )
        finally:
            bar.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out} ({len(page.encode()) / 1e6:.1f} MB, self-contained HTML)")
    return 0


def cmd_frontier(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.info.frontier import DEFAULT_FRONTIER_STRATEGIES, frontier_view

    _check_strategies(args.strategy)
    config = _config(args)
    params = parse_llm_params(args.params or ())
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        verifier = args.verifier or info.verifiers[0]
        view = frontier_view(
            store,
            info,
            verifier,
            config,
            strategies=args.strategy or DEFAULT_FRONTIER_STRATEGIES,
            unit=args.x,
            params=params,
            llms=args.llm,
        )

    def fmt(c: float) -> str:
        return f"{c:.1f}" if view.unit == "samples" else f"{c:,.3g}"

    table = pd.DataFrame(
        [
            {
                f"{view.unit} per problem": fmt(p.cost),
                "LLM": p.llm,
                "strategy": display_label(p.strategy),
                "N": p.budget,
                "accuracy": f"{p.accuracy:.3f} [{p.low:.3f}, {p.high:.3f}]",
            }
            for p in view.frontier()
        ]
    )
    print(
        f"== {info.name}: compute frontier over {len(set(p.llm for p in view.points))} LLMs "
        f"({verifier}; {view.n_problems} problems every LLM answered; accuracy with "
        f"{round(100 * view.level)}% bootstrap CI; {calibration_text(config)})"
    )
    print(_render(table, args, index=False))
    for at in args.at or ():
        best = view.best_at(at)
        if best is None:
            print(f"at {at:,.6g} {view.unit}: nothing fits")
        else:
            print(
                f"at {at:,.6g} {view.unit} per problem: {best.llm} with "
                f"{display_label(best.strategy)} at N = {best.budget} ({fmt(best.cost)}), "
                f"accuracy {best.accuracy:.3f} [{best.low:.3f}, {best.high:.3f}]"
            )
    _issues(view.issues)
    if args.csv:
        _write_csv([pd.DataFrame([p.__dict__ for p in view.points])], args.csv)
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.studies.ensemble import ensemble_study

    config = _config(args)
    with _store(args, read_only=args.read_only) as store:
        info = store.get_dataset(args.dataset)
        verifier = args.verifier or info.verifiers[0]
        with tqdm(total=1.0, desc="ensemble", file=sys.stderr, disable=args.quiet) as bar:

            def progress(stage: str, done: int, total: int) -> None:
                bar.set_description_str(f"ensemble: {stage}"[:60])
                bar.n = done / max(total, 1)
                bar.refresh()

            res = ensemble_study(
                store, info, args.llm, verifier, config, budgets=args.budgets, progress=progress
            )
    df = res.table()

    def cells(col: str) -> list[str]:
        return [
            f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
            for a, lo, hi in zip(df[col], df[f"{col}_low"], df[f"{col}_high"], strict=True)
        ]

    shown = pd.DataFrame(
        {
            "total N": df["total_budget"],
            "per LLM": df["per_llm"],
            "ensemble": cells("ensemble"),
            "best single LLM": df["best_single"],
            "alone at total N": cells("single"),
            "gain (points)": [
                f"{100 * g:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                for g, lo, hi in zip(df["gain"], df["gain_low"], df["gain_high"], strict=True)
            ],
        }
    )
    k = len(res.llms)
    print(
        f"== {info.name}: ensemble of {', '.join(res.llms)} ({k} x N/{k} samples, votes "
        f"weighted by each LLM's calibration accuracy, {config.folds}-fold cross-fitted) "
        f"against the best single LLM at the same total N; {res.n_problems} problems all "
        f"answered; {round(100 * res.level)}% bootstrap CI (gain: paired)"
    )
    print(_render(shown, args, index=False))
    print(
        "note: the best single LLM is picked on these problems (in its favour); alone, an "
        "LLM with fewer samples than the total N uses all of them"
    )
    _write_csv([df], args.csv)
    return 0


#: How a dataset is named on the command line.
DATASET_HELP = "dataset name (or id:ID for its id, as `ttslab list` shows it)"


def _eval_args(s: argparse.ArgumentParser) -> None:
    """Options of the one evaluation config shared by the analysis commands."""
    s.add_argument(
        "--reduction",
        default="stored",
        choices=list(REDUCTIONS),
        help="step-score reduction: stored, min, last, prod, mean, max",
    )
    s.add_argument(
        "--transform",
        default="auto",
        choices=list(TRANSFORMS),
        help="score transform (auto: identity in [0, 1], log-zscore for counts, else rank)",
    )
    s.add_argument(
        "--orientation",
        default="auto",
        choices=list(ORIENTATIONS),
        help="higher or lower scores mean more likely correct; auto: as declared at import, "
        "else estimated on calibration problems",
    )
    s.add_argument(
        "--bandwidth", default="scott", help="KDE bandwidth: scott, silverman or a number"
    )
    s.add_argument(
        "--offset-budget",
        type=int,
        default=32,
        help="budget whose calibration accuracy chooses the offset b",
    )
    s.add_argument(
        "--offset-objective",
        default="budget",
        choices=list(OFFSET_OBJECTIVES),
        help="b maximises accuracy at --offset-budget, or the mean over budgets",
    )
    s.add_argument("--folds", type=int, default=5, help="K of K-fold cross-fitting")
    s.add_argument(
        "--calibration",
        default="labels",
        metavar="labels|none|semi:K",
        help="labels of the calibrated strategies: the calibration problems' own (labels); "
        "none, inferred by EM from answers and scores on every evaluated problem (no label "
        "is read); or K labelled problems per fold, the rest inferred (semi:K)",
    )
    s.add_argument("--subsets", type=int, default=200, help="random subsets per budget")
    s.add_argument("--seed", type=int, default=0, help="seed of the subsets")
    s.add_argument(
        "--order",
        default="auto",
        choices=list(ORDERS),
        help="random subsets, the first N samples in sampling order, or auto (by the "
        "dataset's iid flag)",
    )
    s.add_argument(
        "--tie-break",
        default="fractional",
        choices=list(TIE_BREAKS),
        help="fractional credit over tied answers, or the first tied answer in draw order",
    )
    s.add_argument(
        "--read-only",
        action="store_true",
        help="open the database read-only (no result cache writes)",
    )
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--wide", action="store_true", help="print tables wider than 100 columns")


def _analysis_args(s: argparse.ArgumentParser, *, pair_required: bool = False) -> None:
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("--llm", required=pair_required, help="one LLM (default: all)")
    s.add_argument("--verifier", required=pair_required, help="one verifier (default: all)")
    _eval_args(s)


def cmd_formats(args: argparse.Namespace) -> int:
    print("formats (detected from the file's suffix and first record; --format to force):")
    for k, v in FORMAT_HELP.items():
        print(f"  {k:14s} {v}")
    print("\nlong-format columns:")
    for k, v in LONG_COLUMNS.items():
        print(f"  {k:14s} {v}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ttslab",
        description="TTS Aggregation Lab: store scored LLM samples and compare aggregations.",
    )
    p.add_argument(
        "--db", default=None, help=f"database file (default: ${DB_ENV_VAR} or data/ttslab.duckdb)"
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=None,
        help="import strategies from this module or .py file (repeatable; also "
        f"${PLUGINS_ENV_VAR})",
    )
    p.add_argument(
        "--executor",
        default=None,
        help="where curves are computed, one task per pair: serial (default), local[:N] "
        f"(N processes), or dask://HOST:PORT (a dask scheduler; also ${EXECUTOR_ENV_VAR}, "
        "which the dashboard of `serve` uses too)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import", help="import a file or folder as one dataset")
    s.add_argument("path")
    s.add_argument("--name", help="dataset name (default: the file name without suffix)")
    s.add_argument(
        "--time-limit",
        type=float,
        metavar="SECONDS",
        help="stop the import (nothing stored) when reading, grading and writing take longer",
    )
    s.add_argument(
        "--cpu-limit",
        type=float,
        metavar="SECONDS",
        help="stop the import (nothing stored) when it has used this much CPU time, its "
        "grading workers included",
    )
    s.add_argument(
        "--format",
        default="auto",
        choices=["auto", *READERS],
        help="input format (default: detect; `ttslab formats` describes them)",
    )
    s.add_argument(
        "--complete-records-only",
        action="store_true",
        help="skip JSON lines that cannot be decoded (e.g. a truncated last line) and "
        "report them, instead of failing",
    )
    s.add_argument(
        "--llm",
        help="name of the LLM of every response (default: from the file, else 'model')",
    )
    s.add_argument(
        "--verifier",
        help="name of the verifier of every score, when the input has one verifier "
        "(default: from the file or format)",
    )
    s.add_argument(
        "--include",
        metavar="GLOB",
        help="for a folder: import only files whose name matches (e.g. 'analysis_aime2024_*')",
    )
    s.add_argument(
        "--lower-is-better",
        action="append",
        metavar="VERIFIER",
        help="this verifier's scores point down (lower = more likely correct), e.g. a "
        "length signal (repeatable; BoInf's length is declared so by default)",
    )
    s.add_argument(
        "--higher-is-better",
        action="append",
        metavar="VERIFIER",
        help="declare this verifier higher-is-better (never flipped by estimation)",
    )
    s.add_argument(
        "--in-place",
        action="store_true",
        help="register a folder of Parquet files partitioned as llm=NAME/verifier=NAME/ "
        "without copying it: validated as queries, read where it is (see README)",
    )
    s.add_argument(
        "--storage",
        default="auto",
        choices=list(STORAGES),
        help="where the score rows are kept: the database file (table), Parquet files "
        f"partitioned by LLM and verifier beside it (parquet), or by size (auto: parquet "
        f"from {PARQUET_MIN_SCORES:,} score rows)",
    )
    s.add_argument("--replace", action="store_true", help="replace a dataset of that name")
    s.add_argument(
        "--not-iid",
        action="store_true",
        help="samples are ordered groups (beam search), not independent draws",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("list", help="list datasets")
    s.add_argument("--wide", action="store_true", help="print tables wider than 100 columns")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="describe one dataset and its (LLM, verifier) pairs")
    s.add_argument("name", help=DATASET_HELP)
    s.add_argument("--wide", action="store_true", help="print tables wider than 100 columns")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("delete", help="delete a dataset")
    s.add_argument("name", help=DATASET_HELP)
    s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    s.set_defaults(func=cmd_delete)

    s = sub.add_parser("demo", help="build the simulated demo dataset")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--problems", type=int, default=500)
    s.add_argument("--samples", type=int, default=64)
    s.add_argument("--name", default=DEMO_NAME)
    s.add_argument("--replace", action="store_true")
    s.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing (and succeed) when the demo dataset exists",
    )
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="start the dashboard")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)",
    )
    s.add_argument(
        "--read-only",
        action="store_true",
        help="nobody can upload, replace or delete (the database is opened read-only)",
    )
    s.add_argument(
        "--editors-file",
        help="only the editors in this file (NAME SHA256 lines, see add-editor) can change "
        "datasets; everyone else views",
    )
    s.add_argument(
        "--user-header",
        help="behind an authenticating reverse proxy: the request header naming the user "
        "(e.g. X-Forwarded-User); with --editors-file only the names listed there edit",
    )
    s.add_argument("--max-upload-mb", type=int, default=1024, help="largest upload accepted, in MB")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("add-editor", help="add an editor to an editors file, print the token")
    s.add_argument("file")
    s.add_argument("name")
    s.set_defaults(func=cmd_add_editor)

    s = sub.add_parser("calibrate", help="fit weighting functions per pair and describe them")
    _analysis_args(s)
    s.add_argument("--strategy", action="append", help="strategy (repeatable; default: all fitted)")
    s.add_argument("--csv", help="also write the table to this CSV file")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("curves", help="accuracy vs budget per pair, cross-fitted, with CIs")
    _analysis_args(s)
    s.add_argument("--strategy", action="append", help="strategy (repeatable; default set)")
    s.add_argument("--budgets", type=int, nargs="+", help="budgets (default 1, 2, 4, ..., n)")
    s.add_argument(
        "--x",
        default="samples",
        choices=["samples", "tokens", "flops"],
        help="cost of a budget: samples, expected generated tokens per problem, or FLOPs "
        "(2 x parameters x tokens; needs --params)",
    )
    s.add_argument(
        "--params",
        action="append",
        metavar="LLM=BILLIONS",
        help="parameter count of an LLM in billions, for --x flops (repeatable)",
    )
    s.add_argument("--csv", help="also write the long table to this CSV file")
    s.set_defaults(func=cmd_curves)

    s = sub.add_parser("export-weights", help="write a fitted weighting function as JSON")
    _analysis_args(s, pair_required=True)
    s.add_argument("--strategy", default="kde_wv")
    s.add_argument("-o", "--output", default="-", help="file (default: standard output)")
    s.set_defaults(func=cmd_export_weights)

    s = sub.add_parser("compare", help="gain of strategies over a baseline at one budget")
    _analysis_args(s)
    s.add_argument("--strategy", action="append", help="strategy (repeatable)")
    s.add_argument("--baseline", default="majority")
    s.add_argument("--budget", type=int, default=16)
    s.add_argument("--csv", help="write the long table as CSV")
    s.add_argument("--latex", help="write a booktabs LaTeX table")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("allocate", help="choose the strategy per difficulty bin (Snell et al.)")
    _analysis_args(s, pair_required=True)
    s.add_argument("--strategy", action="append", help="candidate (repeatable; default all)")
    s.add_argument("--bins", type=int, default=4)
    s.add_argument(
        "--variant-offset-budget",
        type=int,
        action="append",
        metavar="N",
        help="also offer each fitted strategy with b (and other fits) tuned for budget N, "
        "so each bin can pick its parameters too (repeatable)",
    )
    s.add_argument("--csv", help="write the per-bin table as CSV")
    s.set_defaults(func=cmd_allocate, seed=0)

    s = sub.add_parser("transfer", help="calibrate on one pair, evaluate on another")
    s.add_argument(
        "--source",
        nargs="+",
        action="append",
        required=True,
        metavar="PAIR",
        help="calibration pair, DATASET/LLM/VERIFIER or DATASET LLM VERIFIER (repeatable)",
    )
    s.add_argument(
        "--target",
        nargs="+",
        action="append",
        metavar="PAIR",
        help="evaluation pair, as --source (repeatable; default: the sources)",
    )
    s.add_argument("--strategy", default="logit_wv")
    s.add_argument("--baseline", default="majority")
    s.add_argument("--budget", type=int, default=16)
    s.add_argument("--csv", help="write the long table as CSV")
    _eval_args(s)
    s.set_defaults(func=cmd_transfer)

    s = sub.add_parser("combine", help="combine several signals of one LLM")
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("--llm", required=True)
    s.add_argument("--verifier", action="append", required=True, help="signal (at least two)")
    _eval_args(s)
    s.set_defaults(func=cmd_combine)

    s = sub.add_parser(
        "stopping", help="early-stopping rules replayed against fixed-N curves (samples, tokens)"
    )
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("--llm", required=True, help="the LLM")
    s.add_argument("--verifier", help="the verifier (default: each in turn)")
    s.add_argument(
        "--rule",
        action="append",
        choices=["adaptive-consistency", "esc", "confidence", "posterior"],
        help="stopping rule (repeatable; default: all)",
    )
    s.add_argument("--cap", type=int, help="most samples a replay may use (default: all)")
    s.add_argument(
        "--reference-budget",
        type=int,
        default=32,
        help="fixed N whose accuracy the savings are read at (default 32)",
    )
    s.add_argument(
        "--tolerance",
        type=float,
        default=0.5,
        help="savings are read where a rule comes within this many accuracy points of the "
        "fixed-N reference (default 0.5)",
    )
    s.add_argument("--budgets", type=int, nargs="+", help="fixed-N budgets (default 1, 2, 4, ...)")
    s.add_argument("--csv", help="also write the curves as a long CSV table")
    _eval_args(s)
    s.set_defaults(func=cmd_stopping)

    s = sub.add_parser(
        "frontier", help="accuracy against cost of every (LLM, strategy, N), Pareto frontier"
    )
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("--verifier", help="the verifier (default: the dataset's first)")
    s.add_argument("--llm", action="append", help="LLM to include (repeatable; default: all)")
    s.add_argument(
        "--strategy",
        action="append",
        help="strategy (repeatable; default: majority, logit_wv, posterior_vote)",
    )
    s.add_argument(
        "--x",
        default="tokens",
        choices=["samples", "tokens", "flops"],
        help="cost: samples, expected generated tokens, or FLOPs (needs --params)",
    )
    s.add_argument(
        "--params",
        action="append",
        metavar="LLM=BILLIONS",
        help="parameter count of an LLM in billions, for --x flops (repeatable)",
    )
    s.add_argument(
        "--at",
        type=float,
        action="append",
        metavar="COST",
        help="also say which point is best at this cost per problem (repeatable)",
    )
    s.add_argument("--budgets", type=int, nargs="+", help="budgets (default 1, 2, 4, ..., n)")
    s.add_argument("--csv", help="write every point (frontier or not) as CSV")
    _eval_args(s)
    s.set_defaults(func=cmd_frontier)

    s = sub.add_parser(
        "report",
        help="a dataset's self-contained HTML report: data and grading, weight functions, "
        "budget curves, the compare table with intervals",
    )
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("-o", "--output", required=True, help="the HTML file to write")
    s.add_argument(
        "--strategy", action="append", help="strategy (repeatable; default: the default set)"
    )
    s.add_argument(
        "--budget",
        type=int,
        help="the compare table's N (default: the largest 1, 2, 4, ... up to the samples "
        "per problem)",
    )
    s.add_argument("--baseline", help="the compare table's baseline (default: majority)")
    s.add_argument(
        "--calibrator", default="kde_wv", help="whose weight functions to draw (default kde_wv)"
    )
    _eval_args(s)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser(
        "ensemble", help="vote over answers pooled from several LLMs at a fixed total budget"
    )
    s.add_argument("dataset", help=DATASET_HELP)
    s.add_argument("--llm", action="append", required=True, help="an LLM (at least two)")
    s.add_argument("--verifier", help="verifier whose pairs are loaded (default: the first)")
    s.add_argument("--budgets", type=int, nargs="+", help="total budgets (multiples of the LLMs)")
    s.add_argument("--csv", help="write the table as CSV")
    _eval_args(s)
    s.set_defaults(func=cmd_ensemble)

    s = sub.add_parser("formats", help="describe the input formats and columns")
    s.set_defaults(func=cmd_formats)
    return p


def _global_options_after_verb(argv: list[str]) -> list[str]:
    """Accept ``--db PATH`` / ``--plugin X`` / ``--executor E`` after the verb too: move
    them to the front."""
    out: list[str] = []
    front: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--db", "--plugin", "--executor") and i + 1 < len(argv):
            front += [a, argv[i + 1]]
            i += 2
            continue
        if a.startswith(("--db=", "--plugin=", "--executor=")):
            front.append(a)
        else:
            out.append(a)
        i += 1
    return front + out


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_global_options_after_verb(raw))
    try:
        env_specs = [x for x in os.environ.get(PLUGINS_ENV_VAR, "").split(",") if x]
        args.plugins = [
            *env_specs,
            *(str(Path(x).resolve()) if x.endswith(".py") else x for x in args.plugin or []),
        ]
        load_plugins(",".join(args.plugins))
        before = os.environ.get(EXECUTOR_ENV_VAR)
        if args.executor is not None:  # one setting for every command and the dashboard
            os.environ[EXECUTOR_ENV_VAR] = parse_executor(args.executor).text
        # machine output (JSON on standard output) and --wide are printed as they are
        wrap = not getattr(args, "wide", False) and args.command not in ("export-weights",)
        out = sys.stdout
        if wrap:
            sys.stdout = _Wrapped(out)  # type: ignore[assignment]
        try:
            code: int = args.func(args)
        finally:
            if wrap:
                sys.stdout.flush()
                sys.stdout = out
            if args.executor is not None:  # main() called in a process that goes on
                if before is None:
                    os.environ.pop(EXECUTOR_ENV_VAR, None)
                else:
                    os.environ[EXECUTOR_ENV_VAR] = before
    except ImportValidationError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except (StoreError, TTSLabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader went away (`ttslab curves ... | head`): stop quietly; what is still
        # buffered goes nowhere instead of ending in a traceback at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
