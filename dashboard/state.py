"""Shared resources and widgets of the dashboard pages, and the one wrapper around core.

* `get_store`: one `Store` per database file and server process (each session thread
  reads through its own cursor, see `core.store`); its result cache is the only cache of
  computed results (no Streamlit cache on top of it).
* Remembered widgets: a page's controls keep their values when the user switches pages
  (Streamlit forgets the state of widgets that are not drawn, so the value is also kept
  under a plain session-state key), and live in the URL's query string under the same
  key, so a copied address reproduces the view.
* `page_context`: the sidebar's dataset, pair and the one `EvalConfig`.
* `compute`: runs one info-layer call with a progress bar that appears within a tenth
  of a second, and turns a core error into a readable message that stops the page.
* Uploads: persisted at once through `core.importers.uploads`, then imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import logging
import math
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from core.access import AccessPolicy
from core.evaluation import EvalConfig
from core.importers import (
    SUPPORTED_SUFFIXES,
    ImportResult,
    ImportValidationError,
    import_path,
)
from core.importers.uploads import (
    UploadError,
    discard_upload,
    parquet_bytes,
    save_upload,
    save_upload_folder,
)
from core.info import (
    common_budgets,
    dataset_label,
    parse_llm_params,
    voting_note,
    warm_curves,
)
from core.lru import Lru
from core.methods import get_strategy
from core.store import ID_PREFIX, DatasetInfo, Store, StoreError, default_db_path
from core.types import ORDERS, ORIENTATIONS, REDUCTIONS, TIE_BREAKS, TRANSFORMS, TTSLabError
from dashboard.export import IMAGE_FORMATS, MIME, figure_csv, figure_image, file_stem
from dashboard.report import build_report
from dashboard.text import plain

T = TypeVar("T")
_LOG = logging.getLogger(__name__)
ProgressFn = Callable[[str, int, int], None]

__all__ = [
    "ID_PREFIX",
    "SUPPORTED_SUFFIXES",
    "Context",
    "Drill",
    "ImportValidationError",
    "ProgressBar",
    "StoreError",
    "TTSLabError",
    "UploadError",
    "UploadOptions",
    "access",
    "approx_budgets",
    "chart",
    "compute",
    "confirm_big",
    "current_dataset",
    "dataset_picker",
    "dataset_report",
    "delete_dataset",
    "editor",
    "end_opening",
    "figure",
    "get_store",
    "import_upload",
    "multiselect",
    "open_in_explorer",
    "opening",
    "page_context",
    "parquet_bytes",
    "plain",
    "remembered",
    "reset_on_dataset_change",
    "save_upload",
    "save_upload_folder",
    "score_controls",
    "select",
    "simulated_banner",
    "stop",
    "voting_banner",
    "warm_up_in_background",
]

# --------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------


@st.cache_resource
def warm_up_in_background() -> threading.Thread:
    """Once per server: import the analysis modules and load the engine's compiled kernels
    in a background thread, while the first page (which computes nothing) is read, so the
    first analysis page does not pay for them."""

    def work() -> None:
        import scipy.optimize  # noqa: F401  (the fits' optimiser, a second to import)

        import core.info  # noqa: F401
        from core.evaluation.engine import warm_up

        warm_up()

    thread = threading.Thread(target=work, name="ttslab-warm-up", daemon=True)
    thread.start()
    return thread


#: Datasets up to this many score rows get their curves computed in the background
#: (TTSLAB_WARM_MAX_SCORES; TTSLAB_WARM=0 turns the background computation off).
WARM_MAX_SCORES = int(os.environ.get("TTSLAB_WARM_MAX_SCORES", "20000000"))
WARM_ENABLED = os.environ.get("TTSLAB_WARM", "1") != "0"


class _PageWork:
    """Whether a page is computing or opening now, and when one last did (the warm-up
    yields)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = 0
        self.opening = 0
        self.last = 0.0

    def open(self) -> Callable[[], None]:
        """A page starts its script run; returns the call that says its opening is over
        (its first computation starts, or the run ends). Calling it again does nothing."""
        with self._lock:
            self.opening += 1
        over = False

        def done() -> None:
            nonlocal over
            with self._lock:
                if not over:
                    over = True
                    self.opening -= 1
                    self.last = time.monotonic()

        return done

    def yield_to_openings(self, limit_s: float = 5.0) -> None:
        """Within the warm-up's work: pause while a page opens, at most `limit_s` (both
        are Python threads of one process: a page's imports and first queries would
        otherwise take turns with the warm-up's, about twice as slow). Not while a page
        computes: it may be waiting for the very result the warm-up is computing."""
        deadline = time.monotonic() + limit_s
        while self.opening and not self.running and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> None:
        with self._lock:
            self.running += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.running -= 1
            self.last = time.monotonic()

    def wait_idle(self, quiet_s: float = 1.0) -> bool:
        """Block until no page has computed or opened for `quiet_s` seconds; False
        (never stop)."""
        while self.running or self.opening or time.monotonic() - self.last < quiet_s:
            time.sleep(0.1)
        return False


PAGE_WORK = _PageWork()


class CurveWarmer:
    """One background thread per server that computes, into the one result cache, the
    default curves of every pair of each dataset it is handed (`warm_curves`), so Compare,
    Budget curves and the explorer's contrasts open warm. It yields to the pages: it
    starts a pair only when no page has computed for a second (`PAGE_WORK`), runs at a
    lower CPU priority (nice 10 on Linux), and a page asking for a pair being computed
    waits for that result instead of computing it twice (`Store.cached`)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Store, DatasetInfo, str | None]] = queue.Queue()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="ttslab-warm-curves", daemon=True)
        self._thread.start()

    def request(self, store: Store, info: DatasetInfo, llm_first: str | None = None) -> bool:
        """Queue `info` once per server; False when it was queued before or is too big."""
        if not WARM_ENABLED or info.n_scores > WARM_MAX_SCORES:
            return False
        with self._lock:
            key = f"{info.dataset_id}:{info.content_sha256}"
            if key in self._seen:
                return False
            self._seen.add(key)
        self._queue.put((store, info, llm_first))
        return True

    def _run(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # not Linux: normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        while True:
            store, info, llm_first = self._queue.get()
            try:
                if llm_first not in info.llms:  # the LLM the pages will open on
                    llm_first = _default_llm(store, info)
                warm_curves(
                    store,
                    info,
                    EvalConfig(),
                    llm_first=llm_first,
                    stop=PAGE_WORK.wait_idle,
                    progress=lambda *_: PAGE_WORK.yield_to_openings(),
                )
            except Exception as exc:  # a dataset that cannot be evaluated: its pages say why
                _LOG.warning("background curves of %r stopped: %s", info.name, exc)


@st.cache_resource
def curve_warmer() -> CurveWarmer:
    return CurveWarmer()


def access() -> AccessPolicy:
    """Who may change the store (from `ttslab serve --read-only / --editors-file /
    --user-header`, passed in the environment)."""
    return AccessPolicy.from_env()


@st.cache_resource
def _store_for(path: str, read_only: bool) -> Store:
    # held only while a page reads or writes it, so the CLI (or a second dashboard) can
    # list, analyse, import, replace and delete while this one serves
    return Store(path, read_only=read_only, shared=True, lock_timeout=STORE_WAIT_S)


#: How long a page waits for another process's import or delete to commit (then it says
#: so and retries); TTSLAB_STORE_WAIT_S overrides it.
STORE_WAIT_S = float(os.environ.get("TTSLAB_STORE_WAIT_S", "30"))


def get_store() -> Store:
    """One Store per database file and server process (opened read-only when the
    dashboard is served read-only, so that no change can get through)."""
    return _store_for(str(default_db_path()), access().read_only)


def editor() -> str | None:
    """Who the visitor edits as, or None when they may only view. When editors need a
    token, the sidebar asks for it."""
    policy = access()
    token = None
    if policy.asks_for_token:
        token = st.sidebar.text_input(
            "Editor token",
            type="password",
            key="editor_token",
            help="Uploading, replacing and deleting datasets needs an editor's token "
            "(`ttslab add-editor`).",
        )
    try:
        headers: Mapping[str, str] = dict(st.context.headers)
    except Exception:  # no request context (scripts, AppTest)
        headers = {}
    return policy.editor(token, headers)


@dataclass(frozen=True)
class UploadOptions:
    """What the upload form can say about the data, as `import_path` takes it."""

    llm: str | None = None
    verifier: str | None = None
    lower_is_better: tuple[str, ...] = ()
    iid: bool = True
    complete_records_only: bool = False


def import_upload(
    store: Store,
    path: Path,
    name: str,
    replace: bool,
    progress: ProgressFn,
    actor: str | None,
    options: UploadOptions | None = None,
) -> ImportResult:
    """Import a persisted upload (a file or a folder) as one dataset, if `actor` may; the
    persisted copy is removed afterwards, imported or refused (a retry saves it again from
    the browser's copy)."""
    who = access().require(actor)
    opts = options or UploadOptions()
    try:
        return import_path(
            store,
            path,
            name=name,
            replace=replace,
            progress=progress,
            actor=who,
            time_limit_s=IMPORT_TIME_LIMIT_S,
            cpu_limit_s=IMPORT_CPU_LIMIT_S,
            llm=opts.llm,
            verifier=opts.verifier,
            lower_is_better=opts.lower_is_better,
            iid=opts.iid,
            complete_records_only=opts.complete_records_only,
        )
    finally:
        discard_upload(store, path)


#: An upload's import (reading, grading, writing) stops after this long, storing nothing;
#: TTSLAB_IMPORT_TIME_LIMIT_S overrides it.
IMPORT_TIME_LIMIT_S = float(os.environ.get("TTSLAB_IMPORT_TIME_LIMIT_S", "1800"))
#: ... and after this much CPU time (its grading workers included);
#: TTSLAB_IMPORT_CPU_LIMIT_S overrides it.
IMPORT_CPU_LIMIT_S = float(os.environ.get("TTSLAB_IMPORT_CPU_LIMIT_S", "3600"))


def delete_dataset(store: Store, info: DatasetInfo, actor: str | None) -> DatasetInfo:
    """Delete a dataset, if `actor` may."""
    return store.delete_dataset(info, actor=access().require(actor))


# --------------------------------------------------------------------------------------
# remembered widgets
# --------------------------------------------------------------------------------------


def _keep(key: str) -> None:
    st.session_state[key] = st.session_state[f"w_{key}"]


# The URL: every remembered control's value is also written to the query string
# (`?llm=...&c_budget=32&c_strategies=a&c_strategies=b`), so a copied address opened in a
# fresh browser reproduces the view. A value in the URL wins only when this session did not
# write it itself (a fresh session, or an edited address); after that the widget wins.
_URL_WRITTEN = "_url_written"


def _url_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def url_encode(value: Any) -> list[str]:
    """A control's value as query-string values (a list or tuple: one value per item;
    an empty list as one empty value, so it differs from "not in the URL")."""
    if isinstance(value, (list, tuple)):
        return [_url_scalar(v) for v in value] or [""]
    return [_url_scalar(value)]


def _url_parse(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        if raw in ("true", "false"):
            return raw == "true"
        raise ValueError(raw)
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


def url_decode(raw: Sequence[str], default: Any, options: Sequence[Any] | None = None) -> Any:
    """The value `raw` (from `url_encode`) stands for, typed like `default` or matched
    against `options` by text; None when it cannot be read (the caller then ignores it)."""
    many = isinstance(default, (list, tuple))
    items = [] if many and list(raw) == [""] else list(raw)
    if options is not None:
        by_text = {_url_scalar(o): o for o in options}
        found = [by_text[r] for r in items if r in by_text]
        if many:
            return found
        return found[0] if len(items) == 1 and found else None
    try:
        if many:
            likes = list(default) or [""]
            out = [_url_parse(r, likes[min(i, len(likes) - 1)]) for i, r in enumerate(items)]
            return tuple(out) if isinstance(default, tuple) else out
        return _url_parse(items[0], default) if len(items) == 1 else None
    except ValueError:
        return None


def _from_url(key: str, default: Any, options: Sequence[Any] | None) -> Any:
    """The URL's value for `key` if the URL holds one this session did not write."""
    raw = st.query_params.get_all(key)
    written: dict[str, list[str]] = st.session_state.setdefault(_URL_WRITTEN, {})
    if not raw or raw == written.get(key):
        return None
    written[key] = raw  # read once: from now on the widget's value wins
    return url_decode(raw, default, options)


def _to_url(key: str, value: Any) -> None:
    enc = url_encode(value)
    written: dict[str, list[str]] = st.session_state.setdefault(_URL_WRITTEN, {})
    written[key] = enc
    if st.query_params.get_all(key) != enc:
        st.query_params[key] = enc if len(enc) > 1 else enc[0]


def _prepare(
    key: str, valid: Callable[[Any], bool], default: Any, options: Sequence[Any] | None = None
) -> None:
    wkey = f"w_{key}"
    value = st.session_state.get(key, default)
    from_url = _from_url(key, default, options)
    if from_url is not None and valid(from_url):
        value = from_url
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
) -> Any:
    """Draw `widget` (st.selectbox, st.slider, ..., or the same on st.sidebar) with a value
    that survives page switches and lives in the URL's query string under `key`. The
    widget's own key is ``"w_" + key``."""
    options = kwargs.get("options")
    _prepare(key, valid or (lambda v: v is not None), default, options)
    value = widget(label, key=f"w_{key}", on_change=_keep, args=(key,), **kwargs)
    st.session_state[key] = value
    _to_url(key, value)
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
    from_url = _from_url(key, [], opts)
    if isinstance(from_url, list):
        stored = from_url
    value = [v for v in (stored if isinstance(stored, list) else default) if v in opts]
    st.session_state[key] = value
    st.session_state[f"w_{key}"] = value
    kwargs.setdefault("wrap", True)  # every chosen chip on screen, on as many rows as needed
    out = (where or st).multiselect(
        label, opts, key=f"w_{key}", on_change=_keep, args=(key,), **kwargs
    )
    st.session_state[key] = list(out)
    _to_url(key, list(out))
    return list(out)


# --------------------------------------------------------------------------------------
# page context: dataset, pair, evaluation config
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    store: Store = field(repr=False)
    info: DatasetInfo
    llm: str = ""
    verifier: str = ""
    config: EvalConfig = field(default_factory=EvalConfig)

    @property
    def dataset(self) -> str:
        return self.info.name

    @property
    def label(self) -> str:
        return dataset_label(self.info.name, self.info.simulated)


def dataset_picker(store: Store) -> DatasetInfo | None:
    """The sidebar's dataset selector (shared by every page); None if the store is empty."""
    stamp = store.file_stamp()  # before the read: a write in between is seen as one
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
    st.session_state[_DATASET_CHECKED] = (info.dataset_id, stamp)  # for `page_body`
    curve_warmer().request(store, info, st.session_state.get("llm"))  # once per dataset
    if info.simulated:
        st.sidebar.caption(":orange[**Simulated data**] (synthetic, with known likelihood ratios)")
    return info


#: (dataset id, `Store.file_stamp`) at which the sidebar's dataset was last seen in the
#: store: by the picker on a whole-app run, by `page_body` on a rerun of a page's part
_DATASET_CHECKED = "_dataset_checked"


def current_dataset() -> DatasetInfo | None:
    info = st.session_state.get("_dataset_info")
    return info if isinstance(info, DatasetInfo) else None


def pair_picker(store: Store, info: DatasetInfo) -> tuple[str, str]:
    """The sidebar's (LLM, verifier) selectors, remembered across pages."""
    st.sidebar.markdown("**Pair**")
    default_llm = None
    if st.session_state.get("llm") not in info.llms:
        default_llm = _default_llm(store, info)
    llm = select("LLM", info.llms, "llm", default_llm, where=st.sidebar)
    default_verifier = None
    if st.session_state.get("verifier") not in info.verifiers:
        default_verifier = _default_verifier(store, info, llm)
    verifier = select("Verifier", info.verifiers, "verifier", default_verifier, where=st.sidebar)
    return llm, verifier


def _default_verifier(store: Store, info: DatasetInfo, llm: str) -> str:
    """The verifier that best separates the LLM's correct from incorrect responses: a
    first view where weighting visibly matters."""
    try:
        summary = store.pair_summary(info)
    except TTSLabError:
        return info.verifiers[0]
    sep = summary[summary["llm"] == llm].set_index("verifier")["separation"].abs().dropna()
    return str(sep.idxmax()) if not sep.empty else info.verifiers[0]


def _default_llm(store: Store, info: DatasetInfo) -> str:
    """The LLM whose share of correct responses is nearest one half: where aggregation
    has the most room to matter (an LLM that is almost always right makes dull plots)."""
    try:
        acc = store.pair_summary(info).groupby("llm")["accuracy"].mean()
    except TTSLabError:
        return info.llms[0]
    if acc.empty:
        return info.llms[0]
    return str((acc - 0.5).abs().idxmin())


TRANSFORM_LABELS = {
    "auto": "auto",
    "identity": "identity",
    "sigmoid": "sigmoid",
    "rank": "rank",
    "zscore": "z-score",
    "log-zscore": "log z-score",
}
ORIENTATION_LABELS = {
    "auto": "auto",
    "higher": "higher is better",
    "lower": "lower is better",
}


def score_controls(where: Any, where_direction: Any = None) -> tuple[str, str]:
    """The score transform and the signal's direction (shared by every page: the weights
    page draws them in its own control row, the others in the sidebar)."""
    transform = select(
        "Score transform",
        TRANSFORMS,
        "transform",
        "auto",
        where=where,
        format_func=TRANSFORM_LABELS.get,
        help="How raw scores become t in [0, 1] before weighting, fitted on calibration "
        "problems. 'auto' keeps scores in [0, 1], uses log z-scores for counts (lengths) "
        "and the rank among calibration scores for any other range (a sigmoid would "
        "saturate wide reward scores). z-scores go through a logistic.",
    )
    orientation = select(
        "Signal direction",
        ORIENTATIONS,
        "orientation",
        "auto",
        where=where_direction or where,
        format_func=ORIENTATION_LABELS.get,
        help="Whether higher or lower scores mean 'more likely correct' (length: lower). "
        "'auto' uses what was declared at import, else decides on calibration problems "
        "(AUC clearly below 0.5 flips the signal).",
    )
    return str(transform), str(orientation)


def evaluation_config(*, score_controls_here: bool = True) -> EvalConfig:
    """The sidebar's evaluation settings, shared by every analysis page: the step
    reduction, the score transform and direction (unless the page draws them itself), and
    (folded away) folds, subsets, subset order, tie rule and bootstrap resamples."""
    st.sidebar.markdown("**Analysis settings**")
    reduction = select(
        "Step reduction",
        REDUCTIONS,
        "reduction",
        where=st.sidebar,
        help="How a PRM's step scores become one score per response. 'stored' keeps the "
        "imported score; min / last / prod / mean / max recompute it from the step scores.",
    )
    calibration = calibration_control(st.sidebar)
    if score_controls_here:
        transform, orientation = score_controls(st.sidebar)
    else:
        transform = str(st.session_state.get("transform", "auto"))
        orientation = str(st.session_state.get("orientation", "auto"))
    with st.sidebar.expander("Evaluation settings"):
        k = select("Cross-fitting folds K", [2, 3, 5, 10], "k", default=5)
        n_subsets = select(
            "Random subsets per budget",
            [50, 100, 200, 400],
            "n_subsets",
            default=200,
            help="T random subsets per problem and budget (common to every strategy).",
        )
        order = select(
            "Subset order",
            ORDERS,
            "order",
            default="auto",
            format_func={
                "auto": "auto (random for iid samples, else sampling order)",
                "random": "random subsets",
                "sample": "first N samples in sampling order",
            }.get,
            help="'first N in sampling order' with tie rule 'first' reproduces scripts such "
            "as rm_maj_eval.py.",
        )
        tie_break = select(
            "Tie rule",
            TIE_BREAKS,
            "tie_break",
            default="fractional",
            format_func={
                "fractional": "fractional credit over tied answers",
                "first": "the tied answer seen first",
            }.get,
        )
        boot = select(
            "Bootstrap resamples for weight bands",
            [20, 50, 100, 200],
            "weight_boot",
            default=50,
        )
    return EvalConfig(
        reduction=reduction,
        folds=int(k),
        n_subsets=int(n_subsets),
        order=order,
        tie_break=tie_break,
        weight_boot=int(boot),
        calibration=calibration,
    ).with_(transform=transform, orientation=orientation)


CALIBRATION_MODES = ("labels", "none", "semi")


def calibration_control(where: Any) -> str:
    """Where the calibrated strategies' labels come from ("labels", "none", "semi:K")."""
    mode = select(
        "Calibration labels",
        CALIBRATION_MODES,
        "calibration",
        where=where,
        default="labels",
        format_func={
            "labels": "correctness labels (cross-fitted)",
            "none": "none: label-free (EM)",
            "semi": "a few labels (semi-supervised)",
        }.get,
        help="Label-free: EM infers which answer of each problem is correct from the "
        "answers and scores alone, and the calibrators are fitted on those inferred labels. "
        "No correctness label is read, so the fit uses every evaluated problem. "
        "Semi-supervised: K labelled problems per fold, the others inferred (cross-fitted).",
    )
    if mode != "semi":
        return str(mode)
    k = remembered(
        where.number_input,
        "Labelled problems per fold",
        "calibration_k",
        20,
        valid=lambda v: isinstance(v, int) and v >= 0,
        min_value=0,
        step=5,
    )
    return f"semi:{int(k)}"


def page_context(
    *, pair: bool = True, settings: bool = True, score_controls_here: bool = True
) -> Context:
    """The dataset (from app.py's sidebar picker), and optionally the pair and config
    (`score_controls_here`: draw the transform and direction in the sidebar).

    Stops the page with an explanation when the store is empty.
    """
    store = get_store()
    info = current_dataset()
    if info is None:
        st.info("The store is empty. Upload a file on the Datasets page, or run `ttslab demo`.")
        stop()
    assert info is not None
    llm = verifier = ""
    if pair:
        llm, verifier = pair_picker(store, info)
    config = (
        evaluation_config(score_controls_here=score_controls_here) if settings else EvalConfig()
    )
    return Context(store, info, llm, verifier, config)


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
            f"**{plain(ctx.label)}** is a simulated benchmark: synthetic data with known "
            "likelihood ratios, parameters fitted to real outputs (data/sim_params.json).",
            icon=":material/science:",
        )


def voting_banner(ctx: Context) -> None:
    """On pages that vote over answers: a warning where votes mean nothing (every
    problem's answers all differ)."""
    note = voting_note(ctx.store, ctx.info)
    if note:
        st.warning(plain(note), icon=":material/warning:")


def llm_params(llms: Sequence[str]) -> dict[str, float]:
    """A remembered text box of parameter counts per LLM (for FLOPs); an unreadable entry
    is explained and ignored."""
    text = remembered(
        st.text_input,
        "Parameters per LLM, in billions (LLM=B, comma-separated)",
        "llm_params",
        "",
        valid=lambda v: isinstance(v, str),
        placeholder=", ".join(f"{m}=7" for m in list(llms)[:2]),
        help="FLOPs = 2 x parameters x generated tokens.",
    )
    try:
        return parse_llm_params([text])
    except TTSLabError as exc:
        st.warning(plain(exc), icon=":material/warning:")
        return {}


def approx_budgets(info: DatasetInfo, llms: Sequence[str] | None = None) -> tuple[int, ...]:
    """The budgets every one of `llms` (default: all) evaluates (`common_budgets`)."""
    return common_budgets(get_store(), info, llms)


# --------------------------------------------------------------------------------------
# the one wrapper around core calls
# --------------------------------------------------------------------------------------


class ProgressBar:
    """A progress callback that draws a bar once the work has taken a moment.

    The bar has its place (an empty slot) from the start, and a timer fills it after
    `delay` seconds even when the work has not reported yet (loading a pair, a first
    fold), so a cold computation shows itself within a second; work that ends sooner
    (a cache hit) draws nothing."""

    def __init__(
        self,
        label: str,
        delay: float = 0.25,
        every: float = 0.5,
        slot: Any = None,
        stage: str = "starting",
    ) -> None:
        self.label = label
        self.delay = delay
        self.every = every
        self.start = time.monotonic()
        self._last = -math.inf
        self._bar: Any = None
        self._slot: Any = st.empty() if slot is None else slot
        self._pending = (0.0, plain(f"{label}: {stage}"))
        self._closed = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(delay, self._draw_pending)
        self._timer.daemon = True
        ctx = get_script_run_ctx(suppress_warning=True)
        if ctx is not None:
            add_script_run_ctx(self._timer, ctx)
        self._timer.start()

    def _draw_pending(self) -> None:
        with self._lock:
            if self._closed or self._bar is not None:
                return
            self._last = time.monotonic()
            self._bar = self._slot.progress(self._pending[0], text=self._pending[1])

    def __call__(self, stage: str, done: int, total: int) -> None:
        frac = min(max(done / total if total else 1.0, 0.0), 1.0)
        text = plain(f"{self.label}: {stage}")
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            if self._bar is None and now - self.start < self.delay:
                self._pending = (frac, text)  # the timer draws it
                return
            if now - self._last < self.every:  # at most two redraws a second
                return
            self._last = now
            if self._bar is None:
                self._bar = self._slot.progress(frac, text=text)
            else:
                self._bar.progress(frac, text=text)

    def take_over(self, label: str) -> bool:
        """For the page's first computation: when the bar is on the page, go on in it
        under `label`, from zero (True); else close it before it draws (False). One
        lock, so the timer cannot draw it in between."""
        with self._lock:
            if self._bar is None or self._closed:
                self._closed = True
                self._timer.cancel()
                return False
            self.label = label
            text = plain(f"{label}: starting")
            self._pending = (0.0, text)
            self._last = time.monotonic()
            self._bar.progress(0.0, text=text)
            return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._timer.cancel()
            if self._bar is not None:
                self._slot.empty()


@dataclass
class _Opening:
    """A page being opened: its bar, and the call that ends its opening (`_PageWork`)."""

    bar: ProgressBar
    done: Callable[[], None]

    def end(self) -> None:
        self.done()
        self.bar.close()


#: The page being opened (`opening`), until its first `compute` takes its bar over.
_OPENING: contextvars.ContextVar[_Opening | None] = contextvars.ContextVar(
    "ttslab_opening", default=None
)


@contextlib.contextmanager
def opening(title: str, path: str, delay: float = 0.3) -> Iterator[None]:
    """Around a page's script run (app.py): a bar at the top of the page that shows
    itself after `delay` seconds while the page is still loading (its modules imported,
    its dataset and defaults read: 1-2 s on a first visit while the background warm-up
    runs), so a slow opening gives feedback within a second, before the page's first
    computation starts. The page's first `compute` goes on in this bar when it is
    already drawn (else closes it and draws its own where it is called); work with its
    own indicator closes it first (`end_opening`). `path`: the page's URL path, which
    tells a rerun of the same page ("Updating ...") from the bare address's hand-over to
    the first page (both titled Datasets)."""
    again = st.session_state.get("_opened_page") == path
    st.session_state["_opened_page"] = path
    bar = (
        ProgressBar(f"Updating {title}", delay=delay, stage="preparing the view")
        if again
        else ProgressBar(f"Opening {title}", delay=delay, stage="loading the page and its data")
    )
    record = _Opening(bar, PAGE_WORK.open())
    token = _OPENING.set(record)
    try:
        yield
    finally:
        _OPENING.reset(token)
        record.end()


def stop() -> NoReturn:
    """`st.stop()`, after closing the page's opening bar. Once a stop is asked for,
    Streamlit sends nothing more from the run, so a bar closed on the way out (a
    `finally`) would stay on the page ("Opening Datasets: ..." above a read-only
    Datasets page)."""
    end_opening()
    st.stop()  # raises within a script run; returns outside one (a bare call)
    raise RuntimeError("state.stop() outside a Streamlit script run: nothing to stop")


def page_body(body: Callable[[], None]) -> None:
    """Run an analysis page's own controls and results (everything under its title and
    the sidebar's context) as a Streamlit fragment. A change to one of these controls
    reruns `body` alone: the server sends only its part of the page, and the browser
    redraws only that part, not the sidebar, the navigation or the title (50-70 ms less
    per change on the weight functions page; bench/RESULTS.md). A sidebar control, a
    page switch or a new dataset reruns the whole app as before.

    `body` reads the page's context (dataset, pair, settings) of the last whole-app run.
    So that it never works on a dataset that is gone, a rerun of `body` alone first checks
    that the sidebar's dataset is still in the store unchanged (`Store.file_stamp`; the
    datasets are read again only when the file was written since the picker or the last
    check saw them, so neither a warm rerun nor a whole-app run reads them twice, nor
    reopens the released file); if another session or the CLI deleted or replaced it,
    the whole app reruns instead, and the sidebar picks again.

    The trade-off: Streamlit lets a change to a fragment's control wait for a run in
    progress instead of interrupting it, so a control changed while a cold computation
    runs (its progress bar on screen) takes effect when the computation ends, its result
    cached. `body` must not draw in the sidebar and nothing outside it may depend on its
    controls. The opening bar (`opening`) belongs to whole-app runs; in a rerun of `body`
    alone a computation draws its own bar where it is called."""

    def run() -> None:
        info = current_dataset()
        if info is not None:
            store = get_store()
            seen = (info.dataset_id, store.file_stamp())
            if st.session_state.get(_DATASET_CHECKED) != seen:  # written since last seen
                if info not in store.list_datasets():
                    st.rerun(scope="app")
                st.session_state[_DATASET_CHECKED] = seen
        body()

    # Streamlit names a fragment by its function's qualified name and place on the page,
    # the same ("_body" of "__main__") on every page: the page's file tells them apart
    run.__qualname__ = f"page_body[{Path(body.__code__.co_filename).stem}]"
    st.fragment(run)()


def end_opening() -> None:
    """End the page's opening and close its bar (before work that shows its own
    progress)."""
    record = _OPENING.get()
    if record is not None:
        _OPENING.set(None)
        record.end()


def _bar_for(label: str) -> ProgressBar:
    """The page's opening bar, relabelled, when it is drawn; else a new bar here. Either
    way the page's opening is over."""
    record = _OPENING.get()
    if record is not None:
        _OPENING.set(None)  # only the first computation takes it over
        record.done()
        if record.bar.take_over(label):
            return record.bar
    return ProgressBar(label)


def compute(label: str, fn: Callable[[ProgressFn], T]) -> T:
    """Run one core call with a progress bar; a core error is shown and stops the page."""
    bar = _bar_for(label)
    try:
        with PAGE_WORK:  # the background warm-up waits meanwhile
            return fn(bar)
    except TTSLabError as exc:
        bar.close()  # before the stop: nothing is sent after it
        st.error(plain(exc))
        stop()
    finally:
        bar.close()


# --------------------------------------------------------------------------------------
# charts with their exports
# --------------------------------------------------------------------------------------


#: Figures kept per server process (`figure`): the last this many distinct inputs.
FIGURE_MEMO = 48
_FIGURES: Lru[str, Any] = Lru(FIGURE_MEMO)


def figure(builder: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`builder(*args, **kwargs)`, kept for the last `FIGURE_MEMO` distinct inputs of the
    server process. A figure builder is pure (the same view draws the same figure), and
    building Plotly's objects is most of a warm rerun (about 0.1 s for the weight
    functions, 6 ms to hand a built one to the chart), so a view seen before (a control
    set back, a page revisited, another visitor on the same view) reuses its figure. The
    key is a digest of the pickled inputs: equal inputs may miss (pickle can differ for
    equal values), different inputs never share a figure. The figure is shared: pages
    draw and export it, never change it. Inputs that cannot be pickled are not kept."""
    try:
        blob = pickle.dumps((args, sorted(kwargs.items())), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return builder(*args, **kwargs)
    key = (
        f"{builder.__module__}.{builder.__qualname__}:"
        + hashlib.blake2b(blob, digest_size=20).hexdigest()
    )
    found, fig = _FIGURES.get(key)
    if found:
        return cast(T, fig)
    built = builder(*args, **kwargs)
    _FIGURES.put(key, built)
    return built


@dataclass(frozen=True)
class Drill:
    """What a click on a chart opens in the problem explorer (`open_in_explorer`): the
    points' customdata index `pairs` and `strategies`; `budget` is the N of a cell (None:
    each point carries its own); `what` names the clicked thing in the caption."""

    info: DatasetInfo
    pairs: Sequence[tuple[str, str]]
    strategies: Sequence[str]
    baseline: str
    budget: int | None = None
    what: str = "point"


def chart(
    fig: Any, key: str, *names: object, where: Any = None, drill: Drill | None = None
) -> None:
    """Draw a Plotly figure full width, with a row of downloads under it: the picture as
    SVG, PDF and PNG (rendered by the local Chromium only when clicked) and the numbers
    drawn as CSV. The files are named from `names` (e.g. the page, dataset and pair).
    `where`: a column or container to draw in (default: the page). With `drill`, a click
    on a point opens the problems behind it in the explorer (and a caption says so)."""
    box = where or st
    # theme=None: the figure is drawn as built, on the project's template, as it is
    # exported. Streamlit's theme restyled it on screen only, and its chart applied that
    # theme a second time after mounting, so every new figure was drawn twice.
    if drill is None:
        box.plotly_chart(fig, key=key, width="stretch", theme=None)
    else:
        clicked = box.plotly_chart(
            fig, key=key, width="stretch", theme=None, on_select="rerun", selection_mode="points"
        )
        open_in_explorer(
            clicked,
            info=drill.info,
            pairs=drill.pairs,
            strategies=drill.strategies,
            budget=drill.budget,
            baseline=drill.baseline,
        )
        at = "this N" if drill.budget is not None else "that N"
        box.caption(
            f"Click a {drill.what} to open its problems in the problem explorer: those where "
            f"the strategy is right and {plain(get_strategy(drill.baseline).label)} wrong "
            f"at {at}."
        )
    stem = file_stem(*names) if names else file_stem(key)
    row = box.container(horizontal=True, gap="small", vertical_alignment="center")
    row.caption("Download this chart:", width="content")
    for fmt in IMAGE_FORMATS:
        row.download_button(
            fmt.upper(),
            data=functools.partial(figure_image, fig, fmt),
            file_name=f"{stem}.{fmt}",
            mime=MIME[fmt],
            key=f"{key}_dl_{fmt}",
            on_click="ignore",
            type="tertiary",
            icon=":material/image:",
        )
    row.download_button(
        "CSV (numbers)",
        data=functools.partial(figure_csv, fig),
        file_name=f"{stem}.csv",
        mime=MIME["csv"],
        key=f"{key}_dl_csv",
        on_click="ignore",
        type="tertiary",
        icon=":material/table:",
    )


def dataset_report(store: Store, info: DatasetInfo, progress: ProgressFn) -> bytes:
    """A dataset's self-contained HTML report with the default evaluation settings (what
    `ttslab report DATASET -o F` writes)."""
    return build_report(store, info, EvalConfig(), progress=progress).encode("utf-8")


EXPLORER_PAGE = Path(__file__).resolve().parent / "views" / "problems.py"


def open_in_explorer(
    event: Any,
    *,
    info: DatasetInfo,
    pairs: Sequence[tuple[str, str]],
    strategies: Sequence[str],
    budget: int | None,
    baseline: str,
) -> None:
    """After a click on a Compare cell (a point whose customdata is its [pair index,
    strategy index]) or on a budget curve's point (customdata [low, high, pair index,
    strategy index, N]): open the problem explorer on that pair, listing the problems
    where the strategy is right and `baseline` wrong at that N (`budget` for a cell).
    Does nothing without a click."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return
    for point in points or ():
        custom = point.get("customdata")
        if isinstance(custom, dict):  # a typed-array row comes back keyed "0", "1", ...
            custom = [custom.get(str(k)) for k in range(len(custom))]
        if not isinstance(custom, list) or len(custom) not in (2, 5):
            continue
        if len(custom) == 5:
            i, j, budget = int(custom[2]), int(custom[3]), int(custom[4])
        else:
            i, j = int(custom[0]), int(custom[1])
        if budget is None or not (0 <= i < len(pairs) and 0 <= j < len(strategies)):
            continue
        (llm, verifier), strategy = pairs[i], strategies[j]
        if strategy == baseline:
            st.toast("That is the baseline's own cell: choose another strategy's cell.")
            return
        st.switch_page(
            str(EXPLORER_PAGE),
            query_params={
                "dataset": info.name,
                "llm": llm,
                "verifier": verifier,
                "p_filter": "a_right_b_wrong",
                "p_a": strategy,
                "p_b": baseline,
                "p_n": str(budget),
                "p_search": "",
            },
        )


#: Sizes beyond which a page computes only after a button press (cells of a matrix).
BIG = {"compare": 150, "transfer": 36, "weight_grid": 42}


def confirm_big(page: str, what: str, size: int, selection: object) -> None:
    """Stop the page with a "Compute" button when `size` (cells, panels) exceeds the
    page's `BIG` limit and this `selection` was not confirmed before in the session."""
    limit = BIG[page]
    if size <= limit:
        return
    token = f"{page}:{selection!r}"
    confirmed: set[str] = st.session_state.setdefault("_big_confirmed", set())
    if token in confirmed:
        return
    st.info(
        f"{what}: {size} cells, more than the {limit} computed without asking. Results "
        "already in the cache appear at once; new ones take a few seconds each.",
        icon=":material/hourglass_top:",
    )
    if st.button("Compute", key=f"big_{page}", type="primary", icon=":material/play_arrow:"):
        confirmed.add(token)
        return
    stop()
