"""The `gmi` CLI contract, through real subprocesses on a real registry."""

import json
import shutil

import pytest

from conftest import SMALL_ZOO, run_gmi, tree_digest
from gmi.hub import Hub


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory, submissions):
    """A registry of the small zoo with the default (offline) encoder, built via the API."""
    home = tmp_path_factory.mktemp("hub")
    hub = Hub(home)
    for name in SMALL_ZOO[1:]:
        hub.submit_folder(name, submissions[name], description=f"zoo {name}", progress=False)
    return home


def test_submit_through_the_cli(tmp_path, hub_home, submissions):
    home = tmp_path / "hub"
    shutil.copytree(hub_home, home)
    result = run_gmi(
        "submit",
        "flat-base",
        "--images",
        str(submissions["flat-base"]),
        "--description",
        "flat vector",
        home=home,
    )
    assert result.returncode == 0, result.stderr
    assert "submitted flat-base: 12 images" in result.stdout
    again = run_gmi("submit", "flat-base", "--images", str(submissions["flat-base"]), home=home)
    assert again.returncode == 4 and "--replace" in again.stderr
    replaced = run_gmi(
        "submit",
        "flat-base",
        "--images",
        str(submissions["ink-base"]),
        "--replace",
        "--json",
        "--quiet",
        home=home,
    )
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["name"] == "flat-base"
    listed = json.loads(run_gmi("models", "--json", home=home, check=True).stdout)
    assert sorted(m["name"] for m in listed) == sorted(SMALL_ZOO)
    other = run_gmi(
        "submit", "x", "--images", str(submissions["ink-base"]), "--encoder", "pixels", home=home
    )
    assert other.returncode == 4 and "encoder" in other.stderr


def test_identify_json_contract(hub_home, query_images):
    paths = [str(query_images[m]) for m in SMALL_ZOO[1:]]
    result = run_gmi("identify", *paths, "--top", "2", "--json", home=hub_home)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert isinstance(out, list) and len(out) == 3
    for entry, path in zip(out, paths, strict=True):
        assert set(entry) == {"image", "prompt", "prompt_source", "close_match", "results"}
        assert entry["image"] == path and isinstance(entry["prompt"], str) and entry["prompt"]
        assert entry["prompt_source"] == "interrogated" and entry["close_match"] is True
        assert [r["rank"] for r in entry["results"]] == [1, 2]
        for r in entry["results"]:
            assert set(r) == {"rank", "model", "score", "distance", "close_match", "exact_match"}
            assert isinstance(r["score"], float) and 0.0 <= r["score"] <= 1.0
            assert isinstance(r["distance"], float)
        scores = [r["score"] for r in entry["results"]]
        assert scores == sorted(scores, reverse=True)
    # the small zoo is easy: every held-out upload has its model in the top 2 of 3
    for entry, model in zip(out, SMALL_ZOO[1:], strict=True):
        assert model in [r["model"] for r in entry["results"]]


def test_identify_together_and_table(hub_home, query_images):
    together = run_gmi(
        "identify",
        str(query_images["ink-base"]),
        str(query_images["photo-base"]),
        "--together",
        "--json",
        home=hub_home,
    )
    out = json.loads(together.stdout)
    assert len(out) == 1 and len(out[0]["results"]) == 3
    table = run_gmi(
        "identify", str(query_images["neon-base"]), "--interrogator", "none", home=hub_home
    )
    assert table.returncode == 0
    assert "rank" in table.stdout and "neon-base" in table.stdout.splitlines()[2]


def test_info_models_remove(tmp_path, hub_home):
    home = tmp_path / "hub"
    shutil.copytree(hub_home, home)
    info = json.loads(run_gmi("info", "ink-base", "--json", home=home, check=True).stdout)
    assert info["n_images"] == 12 and info["gamma"] > 0
    assert info["encoder"] == "offline:style+palette"
    assert "ink-base" in run_gmi("models", home=home, check=True).stdout
    assert run_gmi("remove", "ink-base", home=home).returncode == 0
    assert run_gmi("info", "ink-base", home=home).returncode == 3


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["identify", "/nonexistent.png"], 2, "no such image file"),
        (["identify", "__TEXT__"], 2, "not a readable image"),
        (["identify", "__QUERY__", "--top", "0"], 2, "--top"),
        (["info", "missing-model"], 3, "no model named"),
        (["remove", "missing-model"], 3, "no model named"),
        (["submit", "x", "--images", "/nonexistent"], 2, "not a directory"),
        (["submit", "../evil", "--images", "__FOLDER__"], 2, "invalid model name"),
        (["submit", "new", "--images", "__BADMETA__"], 2, "not valid JSON"),
        (["submit", "new", "--images", "__EMPTY__"], 2, "metadata.jsonl"),
        (["identify", "__QUERY__", "--interrogator", "nope"], 2, "valid interrogators"),
    ],
)
def test_bad_input_one_line_no_traceback_registry_unchanged(
    tmp_path, hub_home, submissions, query_images, args, code, message
):
    home = tmp_path / "hub"
    shutil.copytree(hub_home, home)
    text = tmp_path / "notes.png"
    text.write_text("I am not an image")
    bad = tmp_path / "badmeta"
    shutil.copytree(submissions["flat-base"], bad)
    (bad / "metadata.jsonl").write_text('{"file_name": "0000.png", "text": "x"}\n{oops\n')
    (tmp_path / "empty").mkdir()
    subst = {
        "__TEXT__": str(text),
        "__QUERY__": str(query_images["ink-base"]),
        "__FOLDER__": str(submissions["flat-base"]),
        "__BADMETA__": str(bad),
        "__EMPTY__": str(tmp_path / "empty"),
    }
    before = tree_digest(home)
    result = run_gmi(*[subst.get(a, a) for a in args], home=home)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert tree_digest(home) == before


def test_empty_or_missing_registry(tmp_path, query_images):
    result = run_gmi("identify", str(query_images["ink-base"]), home=tmp_path / "none")
    assert result.returncode == 3 and "no gmi registry" in result.stderr
    assert not (tmp_path / "none").exists()
    assert run_gmi("models", home=tmp_path / "none").returncode == 0
    assert not (tmp_path / "none").exists()
    failed = run_gmi("submit", "m", "--images", str(tmp_path / "nope"), home=tmp_path / "fresh")
    assert failed.returncode == 2 and not (tmp_path / "fresh").exists()
