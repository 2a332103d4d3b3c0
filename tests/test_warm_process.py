"""Right answers every time: a warm process must never serve one image's answer for another.

A cache keyed by `id()` once did exactly that (CPython reuses the ids of freed images): in one
process, consecutive distinct images got the previous image's ranking. Here many distinct
images are identified one by one in ONE warm Python process and through ONE running server,
and every answer must equal a fresh one-image `gmi identify` run in its own process.
"""

from __future__ import annotations

import httpx
import pytest

from conftest import SMALL_ZOO, hub_copy, run_gmi
from gmi.hub import Hub
from gmi.zoo.export import query_upload

N_QUERIES = 10


@pytest.fixture(scope="module")
def warm_hub(tmp_path_factory, submissions, pristine_hub):
    home = hub_copy(pristine_hub, tmp_path_factory.mktemp("warm") / "hub")
    Hub(home).submit_folder(
        "neon-base", submissions["neon-base"], description="the neon-base model", progress=False
    )
    return home


@pytest.fixture(scope="module")
def distinct_queries(tmp_path_factory):
    """Distinct JPEG uploads, cycling over the models so neighbours have different answers."""
    root = tmp_path_factory.mktemp("distinct")
    paths = []
    for i in range(N_QUERIES):
        data, _ = query_upload(SMALL_ZOO[i % len(SMALL_ZOO)], i)
        paths.append(root / f"{i:04d}.jpg")
        paths[-1].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def fresh_answers(warm_hub, distinct_queries):
    """The reference: each image identified alone by a fresh `gmi identify` process."""
    import json

    out = []
    for path in distinct_queries:
        done = run_gmi("identify", str(path), "--top", "4", "--json", home=warm_hub, check=True)
        [entry] = json.loads(done.stdout)
        out.append(entry)
    return out


def _ranking(results):
    return [(r["model"], round(r["distance"], 5)) for r in results]


def test_python_api_one_by_one_equals_fresh_processes(warm_hub, distinct_queries, fresh_answers):
    hub = Hub(warm_hub)
    for _ in range(2):  # twice round: a stale answer would appear from the second image on
        for path, fresh in zip(distinct_queries, fresh_answers, strict=True):
            [result] = hub.identify([path], top=4)
            assert _ranking(result.to_json()["results"]) == _ranking(fresh["results"]), path


def test_server_one_by_one_equals_fresh_processes(
    warm_hub, distinct_queries, fresh_answers, tmp_path_factory
):
    from test_server import running_server

    with running_server(warm_hub) as base:
        for path, fresh in zip(distinct_queries, fresh_answers, strict=True):
            files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
            response = httpx.post(
                f"{base}/api/identify", files=files, data={"top": "4"}, timeout=60
            )
            assert response.status_code == 200, response.text
            [entry] = response.json()
            assert entry["image"] == path.name
            assert _ranking(entry["results"]) == _ranking(fresh["results"]), path


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    warm_hub, distinct_queries, fresh_answers
):
    """All queries at once from parallel clients (the batcher encodes them together), with
    prompts and `top` differing per request: every answer equals the fresh one-image run."""
    from concurrent.futures import ThreadPoolExecutor

    from test_server import running_server

    with running_server(warm_hub) as base:

        def ask(i: int) -> tuple[int, dict]:
            path = distinct_queries[i % len(distinct_queries)]
            files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
            top = 4 if i % 2 == 0 else 2
            response = httpx.post(
                f"{base}/api/identify", files=files, data={"top": str(top)}, timeout=120
            )
            assert response.status_code == 200, response.text
            return i, response.json()[0]

        with ThreadPoolExecutor(max_workers=len(distinct_queries)) as pool:
            answers = list(pool.map(ask, range(3 * len(distinct_queries))))
        for i, entry in answers:
            fresh = fresh_answers[i % len(distinct_queries)]
            top = 4 if i % 2 == 0 else 2
            assert _ranking(entry["results"]) == _ranking(fresh["results"])[:top], i


def test_catalogue_is_paged(warm_hub):
    from test_server import running_server

    with running_server(warm_hub) as base:
        everything = httpx.get(f"{base}/api/models")
        assert everything.status_code == 200
        total = int(everything.headers["x-total-count"])
        assert total == len(everything.json()) == len(SMALL_ZOO)
        first = httpx.get(f"{base}/api/models", params={"limit": 2}).json()
        rest = httpx.get(f"{base}/api/models", params={"offset": 2, "limit": 100}).json()
        assert [m["name"] for m in first + rest] == [m["name"] for m in everything.json()]
        assert all(m["example_prompts"] for m in first)
        assert httpx.get(f"{base}/api/models", params={"limit": 0}).status_code == 422


def test_batcher_shares_encoder_passes(warm_hub, distinct_queries, fresh_answers):
    import asyncio

    from gmi.images import open_image
    from gmi.search.ranking import cuda_available
    from gmi.server.batcher import IdentifyBatcher

    batcher = IdentifyBatcher(Hub(warm_hub), max_images=32)  # as on a GPU
    images = [open_image(p) for p in distinct_queries]

    async def all_at_once():
        return await asyncio.gather(*(batcher.identify([im], top=4) for im in images))

    try:
        answers = asyncio.run(all_at_once())
    finally:
        batcher.close()
    assert batcher.batches < len(images)  # requests waiting together were encoded together
    # on the CPU one image per pass (a batch is not cheaper per image there); a GPU batches
    assert IdentifyBatcher(Hub(warm_hub)).max_images == (32 if cuda_available() else 1)
    for (found, evidence), fresh in zip(answers, fresh_answers, strict=True):
        assert _ranking(found[0].to_json()["results"]) == _ranking(fresh["results"])
        assert set(evidence[0]) == {m.model for m in found[0].results}
