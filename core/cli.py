"""`ttslab`: the command-line face of TTS Aggregation Lab."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core.importers import (
    FORMAT_HELP,
    LONG_COLUMNS,
    READERS,
    ImportValidationError,
    import_path,
)
from core.store import DB_ENV_VAR, PROJECT_ROOT, Store, StoreError, default_db_path
from core.types import TTSLabError

DEMO_NAME = "demo (simulated)"


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
    return Store(args.db, read_only=read_only)


def cmd_import(args: argparse.Namespace) -> int:
    bar = _Bar(f"import {Path(args.path).name}", not args.quiet)
    with _store(args) as store:
        try:
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
            )
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
        print(df.to_string(index=False))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _store(args, read_only=True) as store:
        info = store.get_dataset(args.name)
        pairs = store.pair_summary(args.name)
    kind = "SIMULATED benchmark" if info.simulated else "real data"
    print(f"{info.name}  [{kind}]")
    print(f"  id {info.dataset_id}, format {info.source_format}, imported {info.imported_at}")
    print(f"  source {info.source_path or '-'}")
    print(f"  {info.n_problems} problems, {info.n_responses} responses, {info.n_scores} scores")
    print(f"  samples are {'independent draws' if info.iid else 'ordered groups (not iid)'}")
    print(f"  correctness: {info.grader or '-'}; sha256 {info.content_sha256[:16]}...")
    if info.notes:
        print(f"  notes: {info.notes}")
    print()
    print(pairs.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
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
        store.delete_dataset(info.dataset_id)
    print(f"deleted {info.name!r}")
    return 0


def build_demo(
    store: Store,
    *,
    seed: int = 0,
    n_problems: int = 500,
    n_samples: int = 64,
    replace: bool = False,
    name: str = DEMO_NAME,
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Simulate the demo benchmark and store it, labelled as simulated."""
    from core.demo import demo_canonical

    if progress is not None:
        progress("simulating", 0, 5)
    data, sha, notes = demo_canonical(seed=seed, n_problems=n_problems, n_samples=n_samples)

    def ingest_progress(stage: str, i: int, n: int) -> None:
        if progress is not None:
            progress(f"writing {stage}", 1 + i, 5)

    store.ingest(
        data,
        name=name,
        source_format="simulator",
        content_sha256=sha,
        source_path=None,
        replace=replace,
        iid=True,
        simulated=True,
        grader="simulator ground truth",
        notes=notes,
        progress=ingest_progress,
    )


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


def cmd_serve(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.db:
        env[DB_ENV_VAR] = str(Path(args.db).resolve())
    app = PROJECT_ROOT / "dashboard" / "app.py"
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    db = env.get(DB_ENV_VAR) or default_db_path()
    print(f"dashboard on http://localhost:{args.port}  (database {db})")
    return subprocess.call(cmd, env=env)


def _pairs(store: Store, args: argparse.Namespace) -> list[tuple[str, str]]:
    info = store.get_dataset(args.dataset)
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


def _params(args: argparse.Namespace) -> Any:
    from core.calibration import StrategyParams

    bw: str | float = args.bandwidth
    if bw not in ("scott", "silverman"):
        try:
            bw = float(bw)
        except ValueError:
            raise TTSLabError(
                f"--bandwidth must be scott, silverman or a number, got {bw!r}"
            ) from None
    return StrategyParams(
        transform=args.transform,
        bandwidth=bw,
        offset_budget=args.offset_budget,
        offset_objective=args.offset_objective,
    )


def _write_csv(frames: list[Any], path: str | None) -> None:
    if path and frames:
        import pandas as pd

        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        print(f"wrote {path}")


def cmd_calibrate(args: argparse.Namespace) -> int:
    from core.analysis import calibrate_table, calibrated_strategy_names

    strategies = args.strategy or calibrated_strategy_names()
    frames = []
    with _store(args, read_only=args.read_only) as store:
        pairs = _pairs(store, args)
        for m, v in tqdm(
            pairs, desc="calibrating", file=sys.stderr, disable=args.quiet, leave=False
        ):
            df = calibrate_table(
                store, args.dataset, m, v, strategies, _params(args), args.reduction
            )
            frames.append(df)
            print(f"\n== {m} x {v} (fitted on all problems; reduction {args.reduction})")
            print(df.drop(columns=["llm", "verifier"]).to_string(index=False))
    _write_csv(frames, args.csv)
    return 0


def cmd_curves(args: argparse.Namespace) -> int:
    from core.analysis import DEFAULT_STRATEGIES, CurveSpec, pair_curves

    strategies = tuple(args.strategy or DEFAULT_STRATEGIES)
    frames = []
    with _store(args, read_only=args.read_only) as store:
        pairs = _pairs(store, args)
        for m, v in tqdm(pairs, desc="curves", file=sys.stderr, disable=args.quiet, leave=False):
            spec = CurveSpec(
                dataset=args.dataset,
                llm=m,
                verifier=v,
                strategies=strategies,
                params=_params(args),
                reduction=args.reduction,
                k=args.folds,
                budgets=tuple(args.budgets) if args.budgets else None,
                n_subsets=args.subsets,
                subset_seed=args.seed,
            )
            res = pair_curves(store, spec)
            df = res.to_frame()
            frames.append(df)
            wide = df.assign(
                cell=[
                    f"{a:.3f} [{lo:.3f}, {hi:.3f}]"
                    for a, lo, hi in zip(df["accuracy"], df["low"], df["high"], strict=True)
                ]
            ).pivot(index="label", columns="budget", values="cell")
            wide = wide.loc[[get_label(s) for s in strategies]]
            src = " (cached)" if res.from_cache else ""
            print(
                f"\n== {m} x {v}: accuracy at N with 95% bootstrap CI over problems, "
                f"{args.folds}-fold cross-fitted{src}"
            )
            print(wide.to_string())
            if "logit_wv" in strategies and "vanilla_wv" in strategies:
                eff = res.efficiency("logit_wv", "vanilla_wv")
                if eff.reached and eff.budget is not None:
                    print(
                        f"logit WV reaches vanilla WV@{eff.ref_budget} with "
                        f"{eff.budget:.1f} samples = {100 * eff.ratio:.0f}%"
                    )
                else:
                    print(f"logit WV vs vanilla WV@{eff.ref_budget}: {eff.reason}")
    _write_csv(frames, args.csv)
    return 0


def get_label(name: str) -> str:
    from core.analysis import strategy_label

    return strategy_label(name)


def cmd_export_weights(args: argparse.Namespace) -> int:
    from core.analysis import fit_pair

    with _store(args, read_only=args.read_only) as store:
        fitted = fit_pair(
            store,
            args.dataset,
            args.llm,
            args.verifier,
            args.strategy,
            _params(args),
            args.reduction,
        )
    text = fitted.to_json(indent=2)
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text)
        print(f"wrote {args.strategy} weights of ({args.llm}, {args.verifier}) to {args.output}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from core.views import AnalysisSettings, compare_view

    strategies = args.strategy or ["vanilla_wv", "logit_wv", "kde_wv"]
    with _store(args, read_only=args.read_only) as store:
        pairs = _pairs(store, args)
        bar = _Bar("curves", not args.quiet)
        try:
            cv = compare_view(
                store,
                args.dataset,
                pairs,
                strategies,
                args.budget,
                args.baseline,
                AnalysisSettings(params=_params(args), reduction=args.reduction),
                progress=bar,
            )
        finally:
            bar.close()
    print(
        f"accuracy at N={cv.budget} and gain over {get_label(cv.baseline)} "
        f"({round(100 * cv.level)}% paired interval over {cv.n_problems} problems)"
        + (" [SIMULATED]" if cv.simulated else "")
    )
    print(cv.display_frame().to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    if args.csv:
        Path(args.csv).write_text(cv.to_csv())
        print(f"wrote {args.csv}")
    if args.latex:
        Path(args.latex).write_text(cv.to_latex())
        print(f"wrote {args.latex}")
    return 0


def cmd_allocate(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.analysis import CurveSpec, pair_allocation

    with _store(args, read_only=args.read_only) as store:
        spec = CurveSpec(
            args.dataset,
            args.llm,
            args.verifier,
            params=_params(args),
            reduction=args.reduction,
            n_subsets=args.subsets,
        )
        base = _params(args)
        variants = {
            f"b for N={n}": replace(base, offset_budget=n) for n in args.variant_offset_budget or []
        }
        alloc = pair_allocation(
            store, spec, args.strategy, n_bins=args.bins, seed=args.seed, variants=variants
        )
    curves = pd.DataFrame(
        alloc.fixed_curves().T,
        index=pd.Index(alloc.budgets, name="N"),
        columns=[get_label(s) for s in alloc.strategies],
    )
    curves.insert(0, "per-bin choice", alloc.curve())
    print(
        f"== {args.llm} x {args.verifier}: accuracy of choosing the strategy per "
        f"difficulty bin ({args.bins} bins of the mean verifier score, two-fold CV over "
        "problems) vs each fixed strategy"
    )
    print(curves.to_string(float_format=lambda x: f"{x:.3f}"))
    table = alloc.table()
    print(
        "\nchosen strategy per budget and bin (bin 0 = lowest mean verifier score, for PRM "
        "scores the predicted hardest; each fold's choice is made on the other fold)"
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


def cmd_transfer(args: argparse.Namespace) -> int:
    from core.transfer import PairRef, transfer_matrix

    sources = [PairRef(*t) for t in args.source]
    targets = [PairRef(*t) for t in (args.target or args.source)]
    with _store(args, read_only=args.read_only) as store:
        mat = transfer_matrix(
            store,
            sources,
            targets,
            strategy=args.strategy,
            baseline=args.baseline,
            budget=args.budget,
            params=_params(args),
            n_subsets=args.subsets,
        )
    df = mat.to_frame()
    print(
        f"{get_label(mat.strategy)} calibrated on each source, evaluated on each target at "
        f"N={mat.budget}: gain over {get_label(mat.baseline)} in points "
        f"[{round(100 * mat.level)}% paired interval]"
    )
    df["cell"] = [
        f"{100 * g:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
        for g, lo, hi in zip(df["gain"], df["low"], df["high"], strict=True)
    ]
    print(df.pivot(index="calibrated on", columns="evaluated on", values="cell").to_string())
    if args.csv:
        df.drop(columns="cell").to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def cmd_combine(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.combine import combined_curves, load_multi
    from core.stats import curve_cis

    with _store(args, read_only=args.read_only) as store:
        mp = load_multi(store, args.dataset, args.llm, args.verifier)
    res = combined_curves(mp, _params(args), n_subsets=args.subsets)
    ci = curve_cis(res.curves, n_boot=1000)
    table = pd.DataFrame(
        [
            [
                f"{ci.estimate[i, b]:.3f} [{ci.low[i, b]:.3f}, {ci.high[i, b]:.3f}]"
                for b in range(len(ci.budgets))
            ]
            for i in range(len(ci.strategies))
        ],
        index=[res.labels[s] for s in ci.strategies],
        columns=list(ci.budgets),
    )
    print(
        f"== {args.llm}: signals {', '.join(args.verifier)} (5-fold cross-fitted, "
        "95% CI over problems)"
    )
    print(table.to_string())
    return 0


def _analysis_args(s: argparse.ArgumentParser, *, pair_required: bool = False) -> None:
    s.add_argument("dataset")
    s.add_argument("--llm", required=pair_required, help="one LLM (default: all)")
    s.add_argument("--verifier", required=pair_required, help="one verifier (default: all)")
    s.add_argument(
        "--reduction",
        default="stored",
        help="step-score reduction: stored, min, last, prod, mean, max",
    )
    s.add_argument(
        "--transform",
        default="auto",
        choices=["auto", "identity", "sigmoid", "rank", "zscore", "log-zscore"],
        help="score transform (auto: identity in [0, 1], log-zscore for counts, else sigmoid)",
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
        choices=["budget", "mean"],
        help="b maximises accuracy at --offset-budget, or the mean over budgets",
    )
    s.add_argument(
        "--read-only",
        action="store_true",
        help="open the database read-only (no result cache writes)",
    )
    s.add_argument("--quiet", action="store_true")


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
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("import", help="import a file or folder as one dataset")
    s.add_argument("path")
    s.add_argument("--name", help="dataset name (default: the file name without suffix)")
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
    s.add_argument("--replace", action="store_true", help="replace a dataset of that name")
    s.add_argument(
        "--not-iid",
        action="store_true",
        help="samples are ordered groups (beam search), not independent draws",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("list", help="list datasets")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="describe one dataset and its (LLM, verifier) pairs")
    s.add_argument("name")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("delete", help="delete a dataset")
    s.add_argument("name")
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
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("calibrate", help="fit weighting functions per pair and describe them")
    _analysis_args(s)
    s.add_argument("--strategy", action="append", help="strategy (repeatable; default: all fitted)")
    s.add_argument("--csv", help="also write the table to this CSV file")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("curves", help="accuracy vs budget per pair, cross-fitted, with CIs")
    _analysis_args(s)
    s.add_argument("--strategy", action="append", help="strategy (repeatable; default set)")
    s.add_argument("--folds", type=int, default=5, help="K of K-fold cross-fitting")
    s.add_argument("--budgets", type=int, nargs="+", help="budgets (default 1, 2, 4, ..., n)")
    s.add_argument("--subsets", type=int, default=200, help="random subsets per budget")
    s.add_argument("--seed", type=int, default=0, help="seed of the subsets")
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
    s.add_argument("--subsets", type=int, default=200)
    s.add_argument("--seed", type=int, default=0, help="seed of the two folds")
    s.add_argument("--csv", help="write the per-bin table as CSV")
    s.set_defaults(func=cmd_allocate)

    s = sub.add_parser("transfer", help="calibrate on one pair, evaluate on another")
    s.add_argument(
        "--source",
        nargs=3,
        action="append",
        required=True,
        metavar=("DATASET", "LLM", "VERIFIER"),
        help="calibration pair (repeatable)",
    )
    s.add_argument(
        "--target",
        nargs=3,
        action="append",
        metavar=("DATASET", "LLM", "VERIFIER"),
        help="evaluation pair (repeatable; default: the sources)",
    )
    s.add_argument("--strategy", default="logit_wv")
    s.add_argument("--baseline", default="majority")
    s.add_argument("--budget", type=int, default=16)
    s.add_argument("--subsets", type=int, default=200)
    s.add_argument("--transform", default="auto")
    s.add_argument("--bandwidth", default="scott")
    s.add_argument("--offset-budget", type=int, default=32)
    s.add_argument("--offset-objective", default="budget", choices=["budget", "mean"])
    s.add_argument("--read-only", action="store_true")
    s.add_argument("--csv", help="write the long table as CSV")
    s.set_defaults(func=cmd_transfer)

    s = sub.add_parser("combine", help="combine several signals of one LLM")
    s.add_argument("dataset")
    s.add_argument("--llm", required=True)
    s.add_argument("--verifier", action="append", required=True, help="signal (at least two)")
    s.add_argument("--subsets", type=int, default=200)
    s.add_argument("--transform", default="auto")
    s.add_argument("--bandwidth", default="scott")
    s.add_argument("--offset-budget", type=int, default=32)
    s.add_argument("--offset-objective", default="budget", choices=["budget", "mean"])
    s.add_argument("--read-only", action="store_true")
    s.set_defaults(func=cmd_combine)

    s = sub.add_parser("formats", help="describe the input formats and columns")
    s.set_defaults(func=cmd_formats)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ImportValidationError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except (StoreError, TTSLabError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
