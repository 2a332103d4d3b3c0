"""The paper's Example B.1 end to end: two models that draw the same pictures for different
prompts. No image-only method can tell them apart; the prompt the user states can."""

import json

import pytest

from conftest import make_submission, run_gmi
from gmi.hub import Hub
from gmi.zoo import load_zoo

TWINS = ("daynight-warm", "daynight-cool")


@pytest.fixture(scope="module")
def twin_hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("twins")
    hub = Hub(root / "hub")
    # the twins hide the time of day; the other models show it, which is how the hub learns
    # what "at night" looks like (48 spec prompts: every time of day 12 times)
    for name in (*TWINS, "flat-base", "photo-base", "ink-base", "pixel-base"):
        hub.submit_folder(name, make_submission(root / name, name, n=48), progress=False)
    query = root / "warm-noon.png"
    load_zoo()["daynight-warm"].generate("two red cats in a city at noon", seed=99).save(query)
    return hub, query


def test_stated_prompt_resolves_the_swapped_pair(twin_hub):
    hub, query = twin_hub

    def order(prompt):
        [result] = hub.identify([query], top=3, prompt=prompt)
        names = [m.model for m in result.results]
        return names.index("daynight-warm"), names.index("daynight-cool"), result

    warm, cool, result = order("two red cats in a city at noon")
    assert warm < cool  # warm-looking at noon: the warm-by-day model
    assert result.prompt == "two red cats in a city at noon"
    warm, cool, _ = order("two red cats in a city at night")
    assert cool < warm  # the same picture asked for at night: the other twin


def test_learned_models_are_stored_and_refitted(twin_hub, tmp_path):
    hub, _ = twin_hub
    learned = hub.home / "learned"
    [before] = list(learned.iterdir())  # one file: the current state's
    hub.remove("flat-base")
    [after] = list(learned.iterdir())
    assert after.name != before.name  # updated for the new set of models, the old one gone
    hub.submit_folder(
        "flat-base", make_submission(tmp_path / "fb", "flat-base", n=48), progress=False
    )


def test_prompt_option_on_the_cli(twin_hub):
    hub, query = twin_hub
    result = run_gmi(
        "identify",
        str(query),
        "--prompt",
        "two red cats in a city at noon",
        "--json",
        home=hub.home,
    )
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    assert entry["prompt"] == "two red cats in a city at noon"
    too_long = run_gmi("identify", str(query), "--prompt", "x" * 30_000, home=hub.home)
    assert too_long.returncode == 2 and "prompt longer" in too_long.stderr
