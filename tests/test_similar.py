"""Model-to-model search (`gmi similar`, GET /api/models/{name}/similar, Hub.similar) on a
real hub with siblings: two ink models (line width differs) beside unrelated families."""

from __future__ import annotations

import json

import httpx
import pytest
from test_server import running_server

from conftest import SMALL_ZOO, build_hub, make_submission, run_gmi
from gmi.hub import Hub


@pytest.fixture(scope="module")
def sibling_hub(tmp_path_factory, submissions):
    root = tmp_path_factory.mktemp("similar")
    folders = {**submissions, "ink-heavy": make_submission(root / "ink-heavy", "ink-heavy")}
    return build_hub(root / "hub", folders, names=(*SMALL_ZOO, "ink-heavy"))


def test_a_models_sibling_is_the_most_similar(sibling_hub):
    hub = Hub(sibling_hub)
    found = hub.similar("ink-base", top=4)
    assert found[0].model == "ink-heavy"
    assert "ink-base" not in [m.model for m in found]  # never itself
    assert len(found) == 4  # every other model, best first
    distances = [m.distance for m in found]
    assert distances == sorted(distances)
    scores = [m.score for m in found]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert hub.similar("ink-heavy", top=1)[0].model == "ink-base"
    # the exact scan and the registry's searcher agree (exact here, so trivially; --exact runs)
    assert [m.model for m in hub.similar("ink-base", top=2, exact=True)] == [
        m.model for m in found[:2]
    ]
    # asked again in the same warm process, a distinct model gives its own answer
    assert hub.similar("photo-base", top=1)[0].model != "ink-heavy"


def test_similar_cli_contract_and_errors(sibling_hub):
    out = run_gmi("similar", "ink-base", "--top", "2", "--json", home=sibling_hub, check=True)
    rows = json.loads(out.stdout)
    assert [set(r) for r in rows] == [{"model", "score", "distance"}] * 2
    assert rows[0]["model"] == "ink-heavy" and "ink-base" not in [r["model"] for r in rows]
    missing = run_gmi("similar", "no-such-model", home=sibling_hub)
    assert missing.returncode != 0 and missing.stderr.strip().splitlines() == [
        "gmi: error: no model named 'no-such-model'"
    ]
    bad = run_gmi("similar", "ink-base", "--top", "0", home=sibling_hub)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--top must be between 1 and 1000" in bad.stderr


def test_similar_over_http(sibling_hub):
    with running_server(sibling_hub) as base:
        ok = httpx.get(f"{base}/api/models/ink-heavy/similar", params={"top": 2}, timeout=60)
        assert ok.status_code == 200, ok.text
        assert ok.json()[0]["model"] == "ink-base"
        assert len(ok.json()) == 2
        missing = httpx.get(f"{base}/api/models/no-such/similar", timeout=60)
        assert missing.status_code == 404 and "error" in missing.json()
        bad = httpx.get(f"{base}/api/models/ink-base/similar", params={"top": 0}, timeout=60)
        assert bad.status_code == 422 and "error" in bad.json()


def test_owner_slash_similar_is_not_a_model_name():
    """GET /api/models/{name}/similar would be ambiguous with a model named "owner/similar"."""
    from gmi.errors import InvalidInputError
    from gmi.registry.validation import validate_name

    with pytest.raises(InvalidInputError, match="not 'similar'"):
        validate_name("someone/similar")
    assert validate_name("similar") == "similar"  # a plain name is not a path
    assert validate_name("someone/similar-xl") == "someone/similar-xl"
