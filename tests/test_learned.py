"""What the hub learns from its own pairs: ridge regression, the hub interrogator, the visual
prompt kernel, local scoring, upload-robust spec views."""

import numpy as np
import pytest
from PIL import Image

from gmi.augment import jpeg_round_trip, spec_views
from gmi.registry.packed import PackedIndex
from gmi.search.rules import padded, padded_weights
from gmi.search.weights import PointWeights
from gmi.spec.kernels import squared_distances
from gmi.spec.ridge import RidgeModel
from gmi.spec.scoring import SpecStack, keep_top, score_local
from gmi.spec.specification import build_specification


def test_ridge_recovers_a_linear_map_and_picks_a_small_penalty():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 20))
    true_w = rng.normal(size=(20, 5))
    y = x @ true_w + 3.0 + 0.01 * rng.normal(size=(400, 5))
    model = RidgeModel.fit(x, y)
    np.testing.assert_allclose(model.predict(x[:5]), y[:5], atol=0.1)
    noisy = RidgeModel.fit(x, rng.normal(size=(400, 5)))  # no signal: shrink hard
    assert noisy.penalty > model.penalty
    back = RidgeModel.from_arrays(model.arrays())
    np.testing.assert_array_equal(back.predict(x[:3]), model.predict(x[:3]))


def _index(n_models=3, n_prompts=12, seed=0):
    rng = np.random.default_rng(seed)
    prompts = [f"prompt {i}" for i in range(n_prompts)]
    q = rng.normal(size=(n_prompts, 6)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    content = q @ rng.normal(size=(6, 10))  # what a prompt looks like follows its text
    specs = []
    for _ in range(n_models):
        z = content + rng.normal(size=10) + 0.1 * rng.normal(size=(n_prompts, 10))
        z = (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)
        specs.append(build_specification(z, q, prompts, encoder="t", gamma=1.0))
    names = [f"m{i}" for i in range(n_models)]
    return PackedIndex.from_specs(names, specs), q, SpecStack.from_specs(names, specs)


def _visual_weights(index: PackedIndex, visuals: np.ndarray) -> np.ndarray:
    """Normalised weights [G, M, K] of the visual prompt kernel for these visual vectors."""
    weights = PointWeights(
        ["visual"] * len(visuals), visuals=visuals, text_visuals=index.text_visuals
    )
    arrays = index.arrays
    _, cells = padded(arrays, arrays.live_slots, gram=False)
    return padded_weights(weights, weights.tables(arrays), arrays, cells)


def test_text_visuals_are_per_prompt_means_over_models():
    index, _, _stack = _index()
    features = np.asarray(index.arrays.pair_features)
    expected = np.mean([features[index.pair_rows(m)][3] for m in range(3)], axis=0)
    assert index.arrays.texts[3] == "prompt 3"
    np.testing.assert_allclose(index.text_visuals[3], expected, atol=1e-6)
    assert index.arrays.point_text.tolist()[:12] == list(range(12))  # point j is image j


def test_stated_prompt_selects_the_points_of_that_prompt():
    index, q, _ = _index()
    w = _visual_weights(index, index.prompt_to_visual.predict(q[[5]]))
    assert w.shape == (1, 3, 12)
    np.testing.assert_allclose(w.sum(axis=2), 1.0)
    assert (w[0].argmax(axis=1) == 5).all()  # a spec prompt maps back onto its own points


def test_visual_weights_and_keep_top():
    index, _, _ = _index()
    w = _visual_weights(index, index.text_visuals[[2]])
    kept = keep_top(w, 3)
    assert ((kept > 0).sum(axis=2) == 3).all()
    np.testing.assert_allclose(kept.sum(axis=2), 1.0)
    assert (kept[0].argmax(axis=1) == 2).all()


def test_local_scoring_tends_to_nearest_neighbour():
    _, _, stack = _index()
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 10)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sharp = score_local(stack, z, sharpness=500.0)
    nearest = np.stack([squared_distances(z, stack.points[m]).min(axis=1) for m in range(3)], 1)
    assert (sharp.argmin(axis=1) == nearest.argmin(axis=1)).all()
    # the density itself: exp(-d) = sum_j a_j k(z, c_j) with uniform a
    soft = score_local(stack, z[:1], sharpness=1.0)
    direct = np.exp(-stack.gamma * squared_distances(z[:1], stack.points[0])).mean()
    assert np.exp(-soft[0, 0]) == pytest.approx(direct, rel=1e-9)


def test_jpeg_views():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8))
    assert spec_views([image], "none")[0] is image
    view = spec_views([image], "jpeg")[0]
    assert view.size == image.size and np.asarray(view).tobytes() != np.asarray(image).tobytes()
    assert np.asarray(jpeg_round_trip(image)).shape == (32, 32, 3)
    with pytest.raises(ValueError):
        spec_views([image], "sepia")
