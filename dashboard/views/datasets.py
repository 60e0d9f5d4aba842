"""Datasets: what is in the store; upload, download and delete."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.info import dataset_label
from dashboard.figures import dataset_overview_figure
from dashboard.state import (
    ID_PREFIX,
    SUPPORTED_SUFFIXES,
    ImportValidationError,
    TTSLabError,
    UploadError,
    UploadOptions,
    access,
    chart,
    compute,
    current_dataset,
    dataset_report,
    delete_dataset,
    editor,
    end_opening,
    figure,
    get_store,
    import_upload,
    parquet_bytes,
    plain,
    save_upload,
    save_upload_folder,
    stop,
)

st.title("Datasets")
store = get_store()
who = editor()
policy = access()

# ---- what is stored ----------------------------------------------------------------------
frame = store.datasets_frame()
if frame.empty:
    st.info(
        "The store is empty. Upload a file below, or run `ttslab demo` for the simulated "
        "demo benchmark."
    )
else:
    st.dataframe(
        frame.rename(columns={"kind": "simulated or real"}),
        hide_index=True,
        width="stretch",
        column_config={
            "name": st.column_config.TextColumn(width="large", pinned=True),  # in full
            "responses": st.column_config.NumberColumn(format="localized"),
            "imported": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        },
    )

done = st.session_state.pop("import_done", None)
if done:
    st.success(plain(done), icon=":material/check_circle:")
deleted = st.session_state.pop("delete_done", None)
if deleted:
    st.success(plain(deleted))

# ---- the selected dataset ------------------------------------------------------------
info = current_dataset()
if info is not None:
    st.subheader(f"Selected: {plain(dataset_label(info.name, info.simulated))}")
    st.caption("Choose the dataset in the sidebar; every page works on it.")
    if info.simulated:
        st.warning(
            "Simulated benchmark: synthetic data with known likelihood ratios, "
            "parameters fitted to real outputs (data/sim_params.json).",
            icon=":material/science:",
        )
    st.caption(
        f"{info.n_problems} problems · {info.n_responses:,} responses · "
        f"{len(info.llms)} LLMs × {len(info.verifiers)} verifiers · source: "
        f"{plain(info.source_format)} · samples "
        f"{'independent' if info.iid else 'ordered (not iid)'}"
        f" · correctness: {plain(info.grader or '-')} · id: {ID_PREFIX}{info.dataset_id}"
    )
    if info.notes:
        st.caption(f"Notes: {plain(info.notes)}")
    summary = store.pair_summary(info)
    chart(
        figure(
            dataset_overview_figure,
            summary,
            f"{dataset_label(info.name, info.simulated)}: pairs",
        ),
        "overview_chart",
        "pairs",
        info.name,
    )
    st.dataframe(
        summary,
        hide_index=True,
        # what tells the pairs apart first (a narrow screen scrolls the rest sideways)
        column_order=[
            "llm",
            "verifier",
            "separation",
            "accuracy",
            "responses",
            "problems",
            "score_min",
            "score_max",
        ],
        width="stretch",
        column_config={
            "responses": st.column_config.NumberColumn(format="localized"),
            "accuracy": st.column_config.NumberColumn("share correct", format="percent"),
            "score_min": st.column_config.NumberColumn("min score", format="%.3f"),
            "score_max": st.column_config.NumberColumn("max score", format="%.3f"),
            "separation": st.column_config.NumberColumn(
                "separation (sd, ↑ better)",
                format="%+.2f",
                width=170,  # its numbers in view beside the two pinned name columns
                help="mean score of correct minus incorrect responses, in standard "
                "deviations of the score: how well the verifier tells them apart. Higher "
                "is better; near 0 the verifier does not separate them; negative: lower "
                "scores go with correct answers (e.g. a length).",
            ),
            "llm": st.column_config.TextColumn("LLM", width=150, pinned=True),
            "verifier": st.column_config.TextColumn(width=150, pinned=True),
        },
    )
    # rows of buttons as wide as their labels (fixed columns cut them to "Down…" on a
    # laptop screen)
    actions = st.container(horizontal=True, gap="small")
    selected = info

    def as_parquet() -> bytes:
        return parquet_bytes(store, selected)

    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in info.name)
    actions.download_button(
        "Download as Parquet",
        data=as_parquet,
        file_name=f"{safe}.parquet",
        mime="application/vnd.apache.parquet",
        icon=":material/download:",
        help="The dataset in the long import format (one row per response and verifier).",
    )
    if who is not None and actions.button("Delete…", key="delete_ask", icon=":material/delete:"):
        st.session_state["confirm_delete"] = info.dataset_id
    if who is not None and st.session_state.get("confirm_delete") == info.dataset_id:
        with st.container(border=True):
            st.error(
                f"Delete **{plain(info.name)}** ({info.n_responses:,} responses) from the "
                "store? This cannot be undone."
            )
            answer = st.container(horizontal=True, gap="small")
            if answer.button("Yes, delete it", key="delete_yes", type="primary"):
                try:
                    delete_dataset(store, info, who)
                except TTSLabError as exc:
                    st.error(plain(exc))
                else:
                    st.session_state.pop("confirm_delete", None)
                    st.session_state["delete_done"] = f"Deleted {info.name!r}."
                    st.rerun()
            if answer.button("Cancel", key="delete_no"):
                st.session_state.pop("confirm_delete", None)
                st.rerun()

    # ---- the dataset's report -------------------------------------------------------
    report_key = f"report_{info.dataset_id}"
    report_row = st.container(horizontal=True, gap="medium", vertical_alignment="center")
    if report_row.button("Build an HTML report", key="report_build", icon=":material/description:"):
        st.session_state[report_key] = compute(
            "Building the report (curves already computed are reused)",
            lambda p: dataset_report(store, selected, p),
        )
    report_row.caption(
        "One self-contained file to share: data and grading notes, the weight functions "
        "of every pair, budget curves per LLM and the Compare table with paired 95% "
        "intervals (default evaluation settings; `ttslab report` takes options)."
    )
    if report_key in st.session_state:
        st.download_button(
            "Download the report (HTML)",
            st.session_state[report_key],
            file_name=f"{safe}_report.html",
            mime="text/html",
            key="report_download",
            type="primary",
            icon=":material/download:",
            on_click="ignore",
        )

# ---- who changed what --------------------------------------------------------------
log = store.audit_log()
with st.expander(f"Changes: {len(log)} imports, replaces and deletes (audit log)"):
    if log.empty:
        st.caption("Nothing imported, replaced or deleted yet (or before the log existed).")
    else:
        st.dataframe(
            log,
            hide_index=True,
            width="stretch",
            column_config={"when": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
        )

# ---- upload ------------------------------------------------------------------------
if who is None:
    st.info(
        "This dashboard is read-only: datasets can be viewed and downloaded, not uploaded, "
        "replaced or deleted."
        if policy.read_only
        else "Uploading, replacing and deleting datasets is for editors: enter an editor's "
        "token in the sidebar."
        if policy.asks_for_token
        else "Uploading, replacing and deleting datasets is for editors.",
        icon=":material/lock:",
    )
    stop()
st.subheader("Add a dataset")
st.caption(
    "Long format (CSV, JSON Lines, Parquet: one row per response and verifier), wide JSON "
    "Lines (one line per problem), or the output of search-and-learn, PRM800K, Qwen2.5-Math "
    "rm_maj_eval, OpenR, BoInf or RewardMATH, detected automatically. `ttslab formats` lists "
    "them; examples are in data/examples/."
)
mode = st.radio(
    "Upload",
    ["a file", "a folder"],
    horizontal=True,
    key="upload_mode",
    help="A folder is imported as one dataset: a BoInf or RewardMATH folder (one file per "
    "LLM or reward model), an OpenR run folder (question_K/record_J.jsonl), or several "
    "files of one format.",
)
saved: Path | None = None
upload_label = ""
default_name = ""
if mode == "a file":
    upload = st.file_uploader(
        "Scored responses",
        type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES],
        key=f"upload_{st.session_state.get('upload_round', 0)}",
    )
    if upload is not None:
        try:
            saved = save_upload(store, upload.name, upload.getvalue())
        except UploadError as exc:
            st.error(plain(exc))
        upload_label = upload.name
        default_name = Path(upload.name).stem[:100]
else:
    folder = st.file_uploader(
        "Folder of scored responses",
        type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES],
        accept_multiple_files="directory",
        key=f"upload_dir_{st.session_state.get('upload_round', 0)}",
    )
    if folder:
        try:
            saved = save_upload_folder(store, [(f.name, f.getvalue()) for f in folder])
        except UploadError as exc:
            st.error(plain(exc))
        else:
            upload_label = f"{len(folder)} files"
            default_name = saved.name if not saved.name.startswith("folder-") else "uploaded folder"
if st.session_state.get("upload_stop"):
    st.warning("The import was stopped: nothing was imported.", icon=":material/stop:")
if saved is not None:
    c1, c2 = st.columns([3, 1])
    name = c1.text_input("Dataset name", value=default_name, key=f"upload_name_{saved.name}")
    exists = bool(name) and store.has_dataset(name)
    replace = c2.checkbox(
        "Replace it",
        value=False,
        disabled=not exists,
        help="A dataset of this name exists; tick to overwrite it.",
        key="upload_replace",
    )
    if exists and not replace:
        st.caption(
            f":orange[A dataset named {plain(repr(name))} exists: choose another name or "
            "replace it.]"
        )
    with st.expander("Import options", expanded=False):
        o1, o2 = st.columns(2)
        llm_name = o1.text_input(
            "LLM name",
            key="upload_llm",
            help="Name of the LLM of every response, instead of the one the format gives "
            "(often 'model'). Refused when the file holds several LLMs.",
        )
        verifier_name = o2.text_input(
            "Verifier name",
            key="upload_verifier",
            help="Name of the verifier of every score, instead of the format's. Refused "
            "when the file holds several verifiers.",
        )
        lower = st.text_input(
            "Verifiers where lower is better (comma-separated)",
            key="upload_lower",
            help="E.g. a response length. Others are oriented on calibration problems.",
        )
        o3, o4 = st.columns(2)
        not_iid = o3.checkbox(
            "Samples are not independent draws (e.g. beam search)",
            key="upload_not_iid",
            help="Budgets then take the first N samples in sampling order.",
        )
        complete_only = o4.checkbox(
            "Import the complete records only",
            key="upload_complete_only",
            help="Skip a cut-off last line or row (and lines that cannot be decoded), listed "
            "in the dataset's notes, instead of refusing the file.",
        )
    options = UploadOptions(
        llm=llm_name.strip() or None,
        verifier=verifier_name.strip() or None,
        lower_is_better=tuple(v.strip() for v in lower.split(",") if v.strip()),
        iid=not not_iid,
        complete_records_only=complete_only,
    )
    if st.button("Import", type="primary", key="upload_import", disabled=not name.strip()):
        end_opening()  # the import's own box shows its progress
        try:
            with st.status(f"Importing {plain(upload_label)}…", expanded=True) as status:
                bar = st.progress(0.0)
                # any click stops this run, and with it the import (nothing is stored)
                st.button("Stop the import", key="upload_stop", icon=":material/stop:")

                def progress(stage: str, done: int, total: int) -> None:
                    bar.progress(min(done / max(total, 1), 1.0), text=stage)

                try:
                    res = import_upload(store, saved, name.strip(), replace, progress, who, options)
                except Exception:
                    # no "Importing..." box left spinning above the error
                    status.update(label="Not imported", state="error")
                    # a refused file is dropped from the uploader (and from memory); choose
                    # it again to retry after fixing it
                    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1
                    raise
                status.update(label="Imported", state="complete")
        except ImportValidationError as exc:
            n_issues = len(exc.issues)
            st.error(
                f"{n_issues} problem{'s' if n_issues != 1 else ''} found in "
                f"{plain(upload_label)}; "
                "nothing was imported. Each row names the file, the line or row, and the column:"
            )
            st.dataframe(exc.to_frame(), hide_index=True, width="stretch")
        except TTSLabError as exc:
            st.error(f"Import failed: {plain(exc)}")
        else:
            st.session_state["import_done"] = res.summary()
            st.session_state["select_dataset_next"] = res.info.name
            st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1
            st.rerun()
