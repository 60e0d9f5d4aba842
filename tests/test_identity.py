"""Dataset identity: names and ids are separate namespaces, so no command can act on the
wrong dataset (issue: a name equal to another dataset's id made `delete` remove that one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.cli import main as cli_main
from core.importers import import_path
from core.importers.writers import WRITERS
from core.store import ID_PREFIX, Store, StoreError
from tests.conftest import make_long_frame


def _csv(tmp_path: Path, tag: str) -> Path:
    return WRITERS["long-csv"][0](make_long_frame(n_problems=3), tmp_path / f"{tag}.csv")


def test_a_name_cannot_be_another_datasets_id(store: Store, tmp_path: Path) -> None:
    a = import_path(store, _csv(tmp_path, "a"), name="A").info
    with pytest.raises(StoreError, match="looks like a dataset id"):
        import_path(store, _csv(tmp_path, "b"), name=a.dataset_id)
    for bad in ("id:whatever", "0123456789ab", "", "   ", "x" * 201, "a\nb", "a\x00b"):
        with pytest.raises(StoreError):
            import_path(store, _csv(tmp_path, "c"), name=bad)
    assert [i.name for i in store.list_datasets()] == ["A"]


def test_a_bare_id_is_never_a_name_and_id_prefix_is_explicit(store: Store, tmp_path: Path) -> None:
    a = import_path(store, _csv(tmp_path, "a"), name="A").info
    import_path(store, _csv(tmp_path, "b"), name="B")
    with pytest.raises(StoreError, match=f"{ID_PREFIX}{a.dataset_id}"):
        store.get_dataset(a.dataset_id)
    assert store.get_dataset(f"{ID_PREFIX}{a.dataset_id}").name == "A"
    with pytest.raises(StoreError, match="no dataset with id"):
        store.get_dataset(f"{ID_PREFIX}ffffffffffff")
    store.delete_dataset(f"{ID_PREFIX}{a.dataset_id}")
    assert [i.name for i in store.list_datasets()] == ["B"]


def test_legacy_name_equal_to_an_id_deletes_only_itself(tmp_path: Path) -> None:
    """A store written before names were checked may hold a name equal to another
    dataset's id: the bare string resolves to the name, never to the id."""
    db = tmp_path / "legacy.duckdb"
    with Store(db) as s:
        a = import_path(s, _csv(tmp_path, "a"), name="A").info
        b = import_path(s, _csv(tmp_path, "b"), name="B").info
        s._cur().execute(
            "UPDATE datasets SET name = ? WHERE dataset_id = ?", [a.dataset_id, b.dataset_id]
        )
    assert cli_main(["--db", str(db), "delete", a.dataset_id, "--yes"]) == 0
    with Store(db) as s:
        left = s.list_datasets()
    assert [i.dataset_id for i in left] == [a.dataset_id]  # A survives; the B row went
    assert left[0].name == "A"


def test_cli_resolves_ids_only_with_the_prefix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "c.duckdb"
    assert cli_main(["--db", str(db), "import", str(_csv(tmp_path, "a")), "--name", "A"]) == 0
    with Store(db, read_only=True) as s:
        a = s.get_dataset("A")
    capsys.readouterr()
    assert cli_main(["--db", str(db), "list"]) == 0
    assert f"{ID_PREFIX}{a.dataset_id}" in capsys.readouterr().out
    assert cli_main(["--db", str(db), "show", a.dataset_id]) != 0
    err = capsys.readouterr()
    assert f"{ID_PREFIX}{a.dataset_id}" in err.err + err.out and "Traceback" not in err.err
    assert cli_main(["--db", str(db), "show", f"{ID_PREFIX}{a.dataset_id}"]) == 0
    assert "A  [real data]" in capsys.readouterr().out
    # an empty --name is refused, not replaced by the file name
    assert cli_main(["--db", str(db), "import", str(_csv(tmp_path, "b")), "--name", ""]) != 0
    assert "non-empty name" in "".join(capsys.readouterr())
    with Store(db, read_only=True) as s:
        assert [i.name for i in s.list_datasets()] == ["A"]


@pytest.mark.browser
def test_in_a_browser_an_id_like_name_deletes_only_itself_and_cannot_be_chosen(
    tmp_path: Path,
) -> None:
    """The Datasets page of a store where B is named like A's id (written before names were
    checked): deleting "that id" from the page removes B, never A; uploading under a name
    that looks like an id is refused on the page, and nothing changes."""
    from tests.browser_util import (
        ARTIFACTS,
        chromium,
        dashboard_server,
        full_page_screenshot,
        upload_through_the_page,
        wait_until_idle,
    )

    db = tmp_path / "legacy.duckdb"
    with Store(db) as s:
        a = import_path(s, _csv(tmp_path, "a"), name="A").info
        b = import_path(s, _csv(tmp_path, "b"), name="B").info
        s._cur().execute(
            "UPDATE datasets SET name = ? WHERE dataset_id = ?", [a.dataset_id, b.dataset_id]
        )
    with chromium() as browser, dashboard_server(db) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(url, wait_until="domcontentloaded")
            wait_until_idle(page)
            box = page.get_by_role("combobox", name="Dataset")
            box.click()
            page.get_by_role("option", name=a.dataset_id, exact=True).click()
            wait_until_idle(page)
            page.get_by_text(f"Selected: {a.dataset_id}", exact=True).wait_for(timeout=30_000)
            page.get_by_role("button", name="Delete…").click()
            wait_until_idle(page)
            page.get_by_role("button", name="Yes, delete it").click()
            page.get_by_text(f"Deleted '{a.dataset_id}'").wait_for(timeout=30_000)
            wait_until_idle(page)
            upload_through_the_page(page, _csv(tmp_path, "c"), a.dataset_id, wait=False)
            page.get_by_text("looks like a dataset id").first.wait_for(timeout=60_000)
            wait_until_idle(page)
            full_page_screenshot(page, ARTIFACTS / "datasets_id_like_name_refused.png")
        finally:
            page.close()
    with Store(db, read_only=True) as s:
        left = s.list_datasets()
    assert [(i.dataset_id, i.name) for i in left] == [(a.dataset_id, "A")]
