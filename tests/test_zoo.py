import numpy as np

from gmi.zoo import as_upload, load_prompt_set, load_zoo
from gmi.zoo.prompts import SPEC_PROMPT_SET, TEST_PROMPT_SET, Scene, make_prompt_sets, parse


def test_zoo_size_and_families():
    zoo = load_zoo()
    assert len(zoo) >= 32
    families = {m.spec.family for m in zoo.values()}
    assert {"flat", "ink", "pixel", "photo", "neon", "watercolour", "daynight"} <= families


def test_generate_is_deterministic_per_seed_and_varies_across_seeds():
    model = load_zoo()["photo-grain"]
    a = np.asarray(model.generate("two red cats in a forest at noon", 1))
    b = np.asarray(model.generate("two red cats in a forest at noon", 1))
    c = np.asarray(model.generate("two red cats in a forest at noon", 2))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1.0


def test_content_follows_prompt():
    model = load_zoo()["flat-base"]
    day = np.asarray(model.generate("one cat in a forest at noon", 0), dtype=float)
    night = np.asarray(model.generate("one cat in a forest at night", 0), dtype=float)
    assert night.mean() < day.mean() - 30  # night is darker


def test_swapped_pair_same_marginal_swapped_conditional():
    zoo = load_zoo()
    warm, cool = zoo["daynight-warm"], zoo["daynight-cool"]

    def redness(model, time):
        img = np.asarray(model.generate(f"one cat in a city at {time}", 0), dtype=float)
        return img[..., 0].mean() - img[..., 2].mean()

    assert redness(warm, "noon") > redness(cool, "noon")
    assert redness(warm, "night") < redness(cool, "night")


def test_prompt_sets_are_versioned_balanced_and_disjoint():
    spec, test = load_prompt_set(SPEC_PROMPT_SET), load_prompt_set(TEST_PROMPT_SET)
    assert len(spec) == 48 and len(test) == 48 and not set(spec) & set(test)
    assert [list(spec), list(test)] == list(map(list, make_prompt_sets()))
    times = [parse(p).time for p in spec]
    assert len({times.count(t) for t in set(times)}) == 1  # every time of day equally often


def test_parse_round_trip_and_free_text():
    scene = Scene("robot", "purple", 3, "ocean", "sunset")
    assert parse(scene.prompt()) == scene
    assert parse("A photo of two dogs, at night").count == 2
    assert parse("").subject == "cat"


def test_upload_changes_size_and_is_jpeg_like():
    image = load_zoo()["flat-base"].generate("one cat in a forest at noon", 0)
    up = as_upload(image, 3)
    assert up.size != image.size and up.mode == "RGB"


def test_heldout_zoo_is_frozen_and_disjoint() -> None:
    """The held-out zoo is the end-of-work generalisation check (issue 13): its definitions
    may not change after tuning started, and it shares no model with the built-in zoo."""
    import hashlib

    from gmi.zoo import SWAPPED_PAIRS, load_zoo
    from gmi.zoo.heldout import heldout_models

    frozen = "6cf4b52d90390ad5ca4ee5665a02eefaaeaafdd52c62b945c38c7dbcb4a6830e"
    assert hashlib.sha256(repr(heldout_models()).encode()).hexdigest() == frozen
    heldout = load_zoo("heldout")
    assert len(heldout) == 30
    assert not set(heldout) & set(load_zoo())
    assert all(name in heldout for pair in SWAPPED_PAIRS["heldout"] for name in pair)
    # the conditional twins draw the same picture for a natural and a built setting...
    rose = heldout["setting-rose"]
    a = np.asarray(rose.generate("one red cat in a forest at noon", 3), dtype=np.float32)
    b = np.asarray(rose.generate("one red cat in a city at noon", 3), dtype=np.float32)
    # ...apart from the tint the prompt's setting asks for
    assert a[..., 0].mean() > b[..., 0].mean() and a[..., 2].mean() < b[..., 2].mean()
