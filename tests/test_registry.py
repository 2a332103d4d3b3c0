"""The registry on a real SQLite file: atomic writes, replace, remove, settings, refusals."""

import sqlite3

import numpy as np
import pytest

from conftest import tree_digest
from gmi.errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from gmi.registry import Registry
from gmi.registry import atomic as atomic_module
from gmi.spec.specification import build_specification


def _spec(seed: int = 0, encoder: str = "enc"):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(10, 8)).astype(np.float32)
    q = rng.normal(size=(10, 4)).astype(np.float32)
    return build_specification(z, q, [f"p{i}" for i in range(10)], encoder=encoder, gamma=0.5)


def test_add_get_list_remove(tmp_path):
    reg = Registry(tmp_path / "hub")
    record = reg.add("owner/model-1", _spec(), description="first")
    assert record.n_images == 10 and record.encoder == "enc"
    assert [r.name for r in reg.list()] == ["owner/model-1"]
    spec = reg.load_spec(record)
    assert spec.n_points == 10
    assert reg.db_path.exists()
    with sqlite3.connect(reg.db_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reg.remove("owner/model-1")
    assert reg.list() == []
    assert list(reg.spec_dir.iterdir()) == []
    with pytest.raises(NotFoundError):
        reg.remove("owner/model-1")


def test_existing_name_needs_replace_and_replace_swaps_the_file(tmp_path):
    reg = Registry(tmp_path)
    first = reg.add("m", _spec(0))
    with pytest.raises(ConflictError, match="--replace"):
        reg.add("m", _spec(1))
    second = reg.add("m", _spec(1), replace=True)
    assert second.spec_sha256 != first.spec_sha256
    assert second.created == first.created
    assert [p.name for p in reg.spec_dir.iterdir()] == [second.spec_file]


@pytest.mark.parametrize(
    "name", ["", "../x", "a/b/c", "/abs", "x\x00y", "é", "a" * 200, " a", "a b"]
)
def test_bad_names_are_refused(tmp_path, name):
    reg = Registry(tmp_path)
    with pytest.raises(InvalidInputError):
        reg.add(name, _spec())
    assert reg.list() == [] and list(reg.spec_dir.iterdir()) == []


def test_error_after_file_write_leaves_registry_unchanged(tmp_path, monkeypatch):
    reg = Registry(tmp_path)
    reg.add("keep", _spec(0))
    before = tree_digest(tmp_path)
    # an error inside the database transaction (after the spec file is on disk):
    # a value that cannot be stored as JSON
    with pytest.raises(TypeError):
        reg.add("new", _spec(1), extra={"bad": object()})
    assert tree_digest(tmp_path) == before
    assert [r.name for r in reg.list()] == ["keep"]


def test_crash_during_file_write_leaves_no_trace(tmp_path, monkeypatch):
    reg = Registry(tmp_path)
    reg.add("keep", _spec(0))
    before = tree_digest(tmp_path)
    real_replace = atomic_module.os.replace

    def failing_replace(src, dst):  # the disk fails at the rename
        raise OSError("disk full")

    monkeypatch.setattr(atomic_module.os, "replace", failing_replace)
    with pytest.raises(StorageError, match="disk full"):  # one clear error, nothing changed
        reg.add("new", _spec(1))
    monkeypatch.setattr(atomic_module.os, "replace", real_replace)
    assert tree_digest(tmp_path) == before
    assert reg.orphans() == []


def test_settings_are_kept_unless_overwritten(tmp_path):
    reg = Registry(tmp_path)
    reg.set_settings({"encoder": "offline", "gamma": "1.5"})
    reg.set_settings({"encoder": "pixels"})
    assert reg.settings()["encoder"] == "offline"
    reg.set_settings({"gamma": "2.0"}, overwrite=True)
    assert Registry(tmp_path).settings() == {"encoder": "offline", "gamma": "2.0"}


def test_missing_registry_is_not_created_when_reading(tmp_path):
    with pytest.raises(NotFoundError):
        Registry(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_corrupted_spec_file_is_reported(tmp_path):
    from gmi.errors import CorruptSpecError

    reg = Registry(tmp_path)
    record = reg.add("m", _spec())
    path = reg.spec_dir / record.spec_file
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CorruptSpecError):
        reg.load_spec(record)


def test_add_many_is_one_transaction_whole_or_nothing(tmp_path):
    """A bulk import stores every model in one transaction (the same rows and files as one
    add each), and a batch with a taken name stores nothing and leaves no file behind."""
    one_by_one, bulk = Registry(tmp_path / "a"), Registry(tmp_path / "b")
    specs = {f"m{i}": _spec(i) for i in range(5)}
    for name, spec in specs.items():
        one_by_one.add(name, spec)
    assert bulk.add_many(list(specs.items())) == 5
    assert bulk.list_names() == one_by_one.list_names() == sorted(specs)
    for name, spec in specs.items():
        record = bulk.get(name)
        assert record.spec_sha256 == one_by_one.get(name).spec_sha256
        assert np.array_equal(bulk.load_spec(record).points, spec.points)
    before = tree_digest(tmp_path / "b")
    with pytest.raises(ConflictError):
        bulk.add_many([("new", _spec(9)), ("m2", _spec(10))])  # m2 is taken
    assert tree_digest(tmp_path / "b") == before and not bulk.exists("new")
    assert bulk.add_many([("m2", _spec(10))], replace=True) == 1
    assert np.array_equal(bulk.load_spec(bulk.get("m2")).points, _spec(10).points)
    assert len(list((tmp_path / "b" / "specs").iterdir())) == 5  # the replaced file is gone
