"""Shared resources, widgets and cached calls of the dashboard pages.

* `get_store`: one `Store` per database file and server process (each session thread
  reads through its own cursor, see `core.store`).
* Remembered widgets: a page's controls keep their values when the user switches pages
  (Streamlit forgets the state of widgets that are not drawn, so the value is also kept
  under a plain session-state key).
* `cached`: `st.cache_data` keyed on the database, the dataset's content hash and every
  parameter; on a miss the computation runs outside the cached function with a progress
  bar (Streamlit cannot replay progress updates from inside a cached function), and its
  result is then stored in the cache. The heavy parts are also cached in DuckDB by
  `core.analysis` / `core.views`, so a restarted server starts warm.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from core import views, views_beyond
from core.budget import default_budgets
from core.calibration import StrategyParams
from core.reduce import REDUCTIONS
from core.store import DatasetInfo, Store, default_db_path
from core.transfer import PairRef
from core.types import TTSLabError
from core.views import AnalysisSettings, dataset_label

T = TypeVar("T")
ProgressFn = Callable[[str, int, int], None]

# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------


@st.cache_resource
def _store_for(path: str) -> Store:
    return Store(path)


def get_store() -> Store:
    """One Store per database file and server process."""
    return _store_for(str(default_db_path()))


def uploads_dir(store: Store) -> Path:
    """Where uploaded files are kept (next to the database file; git-ignored)."""
    return store.path.parent / "uploads"


def save_upload(store: Store, name: str, data: bytes) -> Path:
    """Persist an uploaded file at once (Streamlit drops it when the user leaves the page).

    The file name keeps the original suffix (the importers detect the format from it) and
    is prefixed with a content hash, so the same upload is stored once.
    """
    folder = uploads_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "upload"
    digest = hashlib.sha256(data).hexdigest()[:12]
    path = folder / f"{digest}-{safe}"
    if not path.exists():
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def _safe_parts(relpath: str) -> list[str]:
    parts = []
    for part in relpath.replace("\\", "/").split("/"):
        clean = re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._")
        if clean and part not in (".", ".."):
            parts.append(clean)
    return parts


def save_upload_folder(store: Store, files: Sequence[tuple[str, bytes]]) -> Path:
    """Persist an uploaded folder at once, keeping its inner layout (OpenR run folders need
    it): files land under uploads/folder-<hash>/<relative path>. Path components are
    sanitised ('..' and absolute parts are dropped), so nothing is written outside."""
    if not files:
        raise ValueError("the uploaded folder is empty")
    digest = hashlib.sha256()
    for rel, data in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    root = uploads_dir(store) / f"folder-{digest.hexdigest()[:12]}"
    for rel, data in files:
        parts = _safe_parts(rel)
        if not parts:
            continue
        path = root.joinpath(*parts)
        if not path.resolve().is_relative_to(root.resolve()):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)
    # a browser sends "<folder>/<file>": import the uploaded folder itself
    tops = {(_safe_parts(rel) or [""])[0] for rel, _ in files}
    if len(tops) == 1 and (root / next(iter(tops))).is_dir():
        return root / next(iter(tops))
    return root


def parquet_bytes(store: Store, dataset: str) -> bytes:
    """The dataset in the long import format, as Parquet bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    table = pa.Table.from_pandas(store.export_long(dataset), preserve_index=False)
    pq.write_table(table, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# remembered widgets
# --------------------------------------------------------------------------------------


def _keep(key: str) -> None:
    st.session_state[key] = st.session_state[f"w_{key}"]


def _prepare(key: str, valid: Callable[[Any], bool], default: Any) -> None:
    wkey = f"w_{key}"
    value = st.session_state.get(key, default)
    if not valid(value):
        value = default
    st.session_state[key] = value
    st.session_state[wkey] = value


def remembered(
    widget: Callable[..., T],
    label: str,
    key: str,
    default: Any,
    valid: Callable[[Any], bool] | None = None,
    **kwargs: Any,
) -> T:
    """Draw `widget` (st.selectbox, st.slider, ..., or the same on st.sidebar) with a value
    that survives page switches. The widget's own key is ``"w_" + key``."""
    _prepare(key, valid or (lambda v: v is not None), default)
    value = widget(label, key=f"w_{key}", on_change=_keep, args=(key,), **kwargs)
    st.session_state[key] = value
    return value


def select(
    label: str,
    options: Sequence[Any],
    key: str,
    default: Any = None,
    *,
    where: Any = None,
    **kwargs: Any,
) -> Any:
    """A remembered selectbox (value must be one of `options`)."""
    opts = list(options)
    dflt = default if default in opts else (opts[0] if opts else None)
    return remembered(
        (where or st).selectbox,
        label,
        key,
        dflt,
        valid=lambda v: v in opts,
        options=opts,
        **kwargs,
    )


def multiselect(
    label: str,
    options: Sequence[Any],
    key: str,
    default: Sequence[Any],
    *,
    where: Any = None,
    **kwargs: Any,
) -> list[Any]:
    """A remembered multiselect (values not among `options` are dropped)."""
    opts = list(options)
    stored = st.session_state.get(key)
    value = [v for v in (stored if isinstance(stored, list) else default) if v in opts]
    st.session_state[key] = value
    st.session_state[f"w_{key}"] = value
    out = (where or st).multiselect(
        label, opts, key=f"w_{key}", on_change=_keep, args=(key,), **kwargs
    )
    st.session_state[key] = list(out)
    return list(out)


# --------------------------------------------------------------------------------------
# page context: dataset, pair, analysis settings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    store: Store = field(repr=False)
    info: DatasetInfo
    llm: str = ""
    verifier: str = ""
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    weight_boot: int = 50

    @property
    def dataset(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        return dataset_label(self.info.name, self.info.simulated)

    def key(self) -> tuple[str, str, str]:
        """Identifies the database and the dataset's content for cache keys."""
        return (str(self.store.path), self.info.dataset_id, self.info.content_sha256)


def dataset_picker(store: Store) -> DatasetInfo | None:
    """The sidebar's dataset selector (shared by every page); None if the store is empty."""
    infos = store.list_datasets()
    if not infos:
        return None
    names = [i.name for i in infos]
    by_name = {i.name: i for i in infos}
    pending = st.session_state.pop("select_dataset_next", None)
    if pending in names:
        st.session_state["dataset"] = pending
    name = select(
        "Dataset",
        names,
        "dataset",
        where=st.sidebar,
        format_func=lambda n: dataset_label(n, by_name[n].simulated),
    )
    info = by_name[name]
    if info.simulated:
        st.sidebar.caption(":orange[**Simulated data**] (synthetic, with known likelihood ratios)")
    return info


def current_dataset() -> DatasetInfo | None:
    info = st.session_state.get("_dataset_info")
    return info if isinstance(info, DatasetInfo) else None


def pair_picker(info: DatasetInfo) -> tuple[str, str]:
    """The sidebar's (LLM, verifier) selectors, remembered across pages."""
    st.sidebar.markdown("**Pair**")
    default_llm = None
    if st.session_state.get("llm") not in info.llms:
        default_llm = _default_llm(get_store(), info)
    llm = select("LLM", info.llms, "llm", default_llm, where=st.sidebar)
    default_verifier = None
    if st.session_state.get("verifier") not in info.verifiers:
        default_verifier = _default_verifier(get_store(), info, llm)
    verifier = select("Verifier", info.verifiers, "verifier", default_verifier, where=st.sidebar)
    return llm, verifier


def _default_verifier(store: Store, info: DatasetInfo, llm: str) -> str:
    """The verifier that best separates the LLM's correct from incorrect responses: a
    first view where weighting visibly matters."""
    try:
        summary = store.pair_summary(info.name)
    except TTSLabError:
        return info.verifiers[0]
    sep = summary[summary["llm"] == llm].set_index("verifier")["separation"].abs().dropna()
    return str(sep.idxmax()) if not sep.empty else info.verifiers[0]


def _default_llm(store: Store, info: DatasetInfo) -> str:
    """The LLM whose share of correct responses is nearest one half: where aggregation
    has the most room to matter (an LLM that is almost always right makes dull plots)."""
    try:
        acc = store.pair_summary(info.name).groupby("llm")["accuracy"].mean()
    except TTSLabError:
        return info.llms[0]
    if acc.empty:
        return info.llms[0]
    return str((acc - 0.5).abs().idxmin())


REDUCTION_CHOICES = ("stored", *REDUCTIONS)


def analysis_settings() -> tuple[AnalysisSettings, int]:
    """Sidebar settings shared by the analysis pages: step reduction and (folded away)
    the evaluation parameters. Returns the settings and the weight-band resamples."""
    st.sidebar.markdown("**Analysis settings**")
    reduction = select(
        "Step reduction",
        REDUCTION_CHOICES,
        "reduction",
        where=st.sidebar,
        help="How a PRM's step scores become one score per response. 'stored' keeps the "
        "imported score; min / last / prod / mean / max recompute it from the step scores.",
    )
    with st.sidebar.expander("Evaluation settings"):
        k = select("Cross-fitting folds K", [2, 3, 5, 10], "k", default=5)
        n_subsets = select(
            "Random subsets per budget",
            [50, 100, 200, 400],
            "n_subsets",
            default=200,
            help="T random subsets per problem and budget (common to every strategy).",
        )
        boot = select(
            "Bootstrap resamples for weight bands",
            [20, 50, 100, 200],
            "weight_boot",
            default=50,
        )
    return AnalysisSettings(reduction=reduction, k=int(k), n_subsets=int(n_subsets)), int(boot)


def page_context(*, pair: bool = True, settings: bool = True) -> Context:
    """The dataset (from app.py's sidebar picker), and optionally the pair and settings.

    Stops the page with an explanation when the store is empty.
    """
    store = get_store()
    info = current_dataset()
    if info is None:
        st.info("The store is empty. Upload a file on the Datasets page, or run `ttslab demo`.")
        st.stop()
    assert info is not None
    llm = verifier = ""
    if pair:
        llm, verifier = pair_picker(info)
    s, boot = analysis_settings() if settings else (AnalysisSettings(), 50)
    return Context(store, info, llm, verifier, s, boot)


def reset_on_dataset_change(page: str, keys: Sequence[str], info: DatasetInfo) -> None:
    """Forget a page's remembered `keys` when the sidebar's dataset changed since the page
    last ran, so their defaults follow the current dataset."""
    marker = f"_{page}_dataset"
    if st.session_state.get(marker) != info.dataset_id:
        for k in keys:
            st.session_state.pop(k, None)
        st.session_state[marker] = info.dataset_id


def simulated_banner(ctx: Context) -> None:
    if ctx.info.simulated:
        st.warning(
            f"**{ctx.label}** is a simulated benchmark: synthetic data with known "
            "likelihood ratios, parameters fitted to real outputs (data/sim_params.json).",
            icon=":material/science:",
        )


# --------------------------------------------------------------------------------------
# cached calls with progress
# --------------------------------------------------------------------------------------


class _Miss(Exception):
    """Raised inside the cached function to look the cache up without computing."""


def _raise_miss() -> Any:
    raise _Miss


@st.cache_data(show_spinner=False, max_entries=512)
def _memo(kind: str, key: str, _produce: Callable[[], Any]) -> Any:
    return _produce()


class ProgressBar:
    """A progress callback that draws a bar only once the work has taken a moment."""

    def __init__(self, label: str, delay: float = 0.25) -> None:
        self.label = label
        self.delay = delay
        self.start = time.monotonic()
        self._bar: Any = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        frac = min(max(done / total if total else 1.0, 0.0), 1.0)
        if self._bar is None and time.monotonic() - self.start < self.delay:
            return
        text = f"{self.label}: {stage}"
        if self._bar is None:
            self._bar = st.progress(frac, text=text)
        else:
            self._bar.progress(frac, text=text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.empty()


def cache_key(*parts: Any) -> str:
    """A stable text key of JSON-able parts (StrategyParams and settings flattened)."""

    def norm(x: Any) -> Any:
        if isinstance(x, StrategyParams):
            return x.to_dict()
        if isinstance(x, AnalysisSettings):
            return {
                "params": x.params.to_dict(),
                "reduction": x.reduction,
                "k": x.k,
                "fold_seed": x.fold_seed,
                "n_subsets": x.n_subsets,
                "subset_seed": x.subset_seed,
                "n_boot": x.n_boot,
                "level": x.level,
            }
        if isinstance(x, tuple | list):
            return [norm(v) for v in x]
        return x

    return json.dumps([norm(p) for p in parts], sort_keys=True, default=str)


def cached(kind: str, key: str, compute: Callable[[ProgressFn], T], label: str) -> T:
    """The cached result of `compute`, else computed now with a progress bar, then cached."""
    try:
        value: T = _memo(kind, key, _raise_miss)
        return value
    except _Miss:
        pass
    bar = ProgressBar(label)
    try:
        value = compute(bar)
    finally:
        bar.close()
    _memo(kind, key, lambda: value)
    return value


# --------------------------------------------------------------------------------------
# the pages' cached core calls
# --------------------------------------------------------------------------------------


def _guard(fn: Callable[[], T]) -> T:
    """Run a core call; show a readable error and stop the page if it fails."""
    try:
        return fn()
    except TTSLabError as exc:
        st.error(str(exc))
        st.stop()
        raise  # unreachable: st.stop() raises


def approx_budgets(info: DatasetInfo) -> tuple[int, ...]:
    """Budgets 1, 2, 4, ... up to the typical number of samples per problem and LLM."""
    per = info.n_responses / max(info.n_problems * max(len(info.llms), 1), 1)
    return default_budgets(max(1, math.ceil(per)))


def weight_view(ctx: Context, kind: str, params: StrategyParams) -> views.WeightView:
    key = cache_key(
        ctx.key(), ctx.llm, ctx.verifier, kind, params, ctx.settings.reduction, ctx.weight_boot
    )
    return _guard(
        lambda: cached(
            "weight_view",
            key,
            lambda p: views.weight_view(
                ctx.store,
                ctx.dataset,
                ctx.llm,
                ctx.verifier,
                kind,
                params,
                ctx.settings.reduction,
                ctx.weight_boot,
                progress=p,
            ),
            f"Fitting {views.CALIBRATORS[kind]} weights of {ctx.llm} × {ctx.verifier} with "
            f"{ctx.weight_boot} bootstrap refits (once; cached afterwards)",
        )
    )


def weight_grid_view(ctx: Context, kind: str, params: StrategyParams) -> views.WeightGridView:
    key = cache_key(ctx.key(), kind, params, ctx.settings.reduction)
    return _guard(
        lambda: cached(
            "weight_grid_view",
            key,
            lambda p: views.weight_grid_view(
                ctx.store, ctx.dataset, kind, params, ctx.settings.reduction, progress=p
            ),
            f"Fitting {views.CALIBRATORS[kind]} weights of every pair (once; cached afterwards)",
        )
    )


def budget_view(
    ctx: Context,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    efficiency: tuple[str, str],
    ref_budget: int | None,
) -> views.BudgetView:
    key = cache_key(ctx.key(), list(pairs), list(strategies), efficiency, ref_budget, ctx.settings)
    return _guard(
        lambda: cached(
            "budget_view",
            key,
            lambda p: views.budget_view(
                ctx.store,
                ctx.dataset,
                pairs,
                strategies,
                ctx.settings,
                efficiency=efficiency,
                ref_budget=ref_budget,
                progress=p,
            ),
            "Cross-fitting and evaluating (about 2-5 s per pair, once; cached afterwards)",
        )
    )


def compare_view(
    ctx: Context,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    budget: int,
    baseline: str,
) -> views.CompareView:
    key = cache_key(ctx.key(), list(pairs), list(strategies), budget, baseline, ctx.settings)
    return _guard(
        lambda: cached(
            "compare_view",
            key,
            lambda p: views.compare_view(
                ctx.store,
                ctx.dataset,
                pairs,
                strategies,
                budget,
                baseline,
                ctx.settings,
                progress=p,
            ),
            f"Cross-fitting and evaluating {len(pairs)} pairs (about 2-5 s per new pair, "
            "once; cached afterwards)",
        )
    )


def disagreement(ctx: Context, strategies: Sequence[str]) -> views.DisagreementView:
    key = cache_key(ctx.key(), ctx.llm, ctx.verifier, list(strategies), ctx.settings)
    return _guard(
        lambda: cached(
            "disagreement",
            key,
            lambda p: views.disagreement_problems(
                ctx.store,
                ctx.dataset,
                ctx.llm,
                ctx.verifier,
                strategies,
                ctx.settings,
                progress=p,
            ),
            f"Cross-fitting {len(strategies)} strategies on {ctx.llm} × {ctx.verifier} "
            "(once; cached afterwards)",
        )
    )


def problem_view(ctx: Context, problem_id: str, strategies: Sequence[str]) -> views.ProblemView:
    key = cache_key(ctx.key(), ctx.llm, ctx.verifier, problem_id, list(strategies), ctx.settings)
    return _guard(
        lambda: cached(
            "problem_view",
            key,
            lambda p: views.problem_view(
                ctx.store,
                ctx.dataset,
                ctx.llm,
                ctx.verifier,
                problem_id,
                strategies,
                ctx.settings,
                progress=p,
            ),
            "Cross-fitting the strategies (once; cached afterwards)",
        )
    )


def transfer_view(
    ctx: Context,
    sources: Sequence[PairRef],
    targets: Sequence[PairRef],
    strategy: str,
    baseline: str,
    budget: int,
) -> views_beyond.TransferView:
    names = sorted({r.dataset for r in (*sources, *targets)})
    infos = [_guard(lambda n=n: ctx.store.get_dataset(n)) for n in names]  # type: ignore[misc]
    data_key = [(i.dataset_id, i.content_sha256) for i in infos]
    key = cache_key(
        str(ctx.store.path),
        data_key,
        [(r.dataset, r.llm, r.verifier) for r in sources],
        [(r.dataset, r.llm, r.verifier) for r in targets],
        strategy,
        baseline,
        budget,
        ctx.settings,
    )
    n = len(sources) * len(targets)
    return _guard(
        lambda: cached(
            "transfer_view",
            key,
            lambda p: views_beyond.transfer_view(
                ctx.store,
                sources,
                targets,
                strategy,
                baseline,
                budget,
                ctx.settings,
                progress=p,
            ),
            f"Calibrating and evaluating {n} cells (up to a few seconds per new cell, once; "
            "cached afterwards)",
        )
    )


def allocation_view(
    ctx: Context, candidates: Sequence[str], n_bins: int
) -> views_beyond.AllocationView:
    key = cache_key(ctx.key(), ctx.llm, ctx.verifier, list(candidates), n_bins, ctx.settings)
    return _guard(
        lambda: cached(
            "allocation_view",
            key,
            lambda p: views_beyond.allocation_view(
                ctx.store,
                ctx.dataset,
                ctx.llm,
                ctx.verifier,
                candidates,
                n_bins,
                ctx.settings,
                progress=p,
            ),
            f"Cross-fitting and evaluating {ctx.llm} × {ctx.verifier} (once; cached afterwards)",
        )
    )


def combine_view(ctx: Context, verifiers: Sequence[str]) -> views_beyond.CombineView:
    key = cache_key(ctx.key(), ctx.llm, list(verifiers), ctx.settings)
    return _guard(
        lambda: cached(
            "combine_view",
            key,
            lambda p: views_beyond.combine_view(
                ctx.store, ctx.dataset, ctx.llm, verifiers, ctx.settings, progress=p
            ),
            f"Cross-fitting {len(verifiers)} signals and 2 combiners for {ctx.llm} "
            "(once; cached afterwards)",
        )
    )
