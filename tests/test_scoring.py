"""Scoring: the vectorised pass equals a per-model NumPy reference; uniform weights are the
baseline exactly; the swapped-conditional pair (METHOD.md 2b) separates only when weighted."""

import numpy as np
import pytest

from gmi.spec.kernels import gaussian_kernel
from gmi.spec.scoring import SpecStack, prompt_weights, score_queries
from gmi.spec.specification import build_specification


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _random_specs(n_models: int = 5, seed: int = 0, n_points: int | None = None):
    rng = np.random.default_rng(seed)
    prompts = [f"prompt {i}" for i in range(20)]
    q = _unit(rng.normal(size=(20, 8)))
    specs = []
    for _ in range(n_models):
        z = _unit(rng.normal(size=(20, 12)) + rng.normal(size=12))
        specs.append(
            build_specification(z, q, prompts, encoder="test", gamma=0.7, n_points=n_points)
        )
    return specs, q


def _reference_distance(z, spec, a):
    """Direct formula of METHOD.md section 3 step 4 for one image and one model."""
    c = spec.points.astype(np.float64)
    kzc = gaussian_kernel(z[None], c, spec.gamma)[0]
    kcc = gaussian_kernel(c, c, spec.gamma)
    return 1.0 - 2.0 * a @ kzc + a @ kcc @ a


@pytest.mark.parametrize("n_points", [None, 7])
def test_uniform_weights_are_exactly_the_baseline(n_points):
    specs, _ = _random_specs(n_points=n_points)
    stack = SpecStack.from_specs([f"m{i}" for i in range(len(specs))], specs)
    z = _unit(np.random.default_rng(9).normal(size=(3, 12)))
    got = score_queries(stack, z)
    for t in range(3):
        for m, spec in enumerate(specs):
            expected = _reference_distance(z[t].astype(np.float64), spec, spec.beta)
            assert got[t, m] == pytest.approx(expected, abs=1e-12)


def test_weighted_scores_match_reference_per_model():
    specs, _ = _random_specs()
    stack = SpecStack.from_specs([f"m{i}" for i in range(len(specs))], specs)
    rng = np.random.default_rng(4)
    z = _unit(rng.normal(size=(2, 12)))
    qt = _unit(rng.normal(size=(2, 8)))
    got = score_queries(stack, z, None, qt, tau=0.2)
    for t in range(2):
        for m, spec in enumerate(specs):
            w = np.exp(spec.point_prompts.astype(np.float64) @ qt[t].astype(np.float64) / 0.2)
            w /= w.sum()
            a = w * spec.beta
            a *= spec.beta.sum() / a.sum()
            assert got[t, m] == pytest.approx(
                _reference_distance(z[t].astype(np.float64), spec, a), abs=1e-7
            )


def test_prompt_equal_to_every_context_gives_the_baseline():
    specs, _ = _random_specs(2)
    for s in specs:  # every point shares one prompt context: weighting cannot change anything
        s.point_prompts[:] = s.point_prompts[0]
    stack = SpecStack.from_specs(["a", "b"], specs)
    z = _unit(np.random.default_rng(1).normal(size=(1, 12)))
    np.testing.assert_allclose(
        score_queries(stack, z, None, specs[0].point_prompts[:1]),
        score_queries(stack, z),
        atol=1e-12,
    )


def test_weights_are_normalised_and_respect_padding():
    specs, q = _random_specs(3)
    specs[1] = build_specification(
        specs[1].pair_features[:5], q[:5], [f"p{i}" for i in range(5)], encoder="test", gamma=0.7
    )
    stack = SpecStack.from_specs(["a", "b", "c"], specs)
    w = prompt_weights(q[:2], stack)
    np.testing.assert_allclose(w.sum(axis=2), 1.0)
    assert (w[:, 1, 5:] == 0).all()


def test_swapped_conditional_pair():
    """METHOD.md 2b: A draws day warm / night cold, B the reverse; same marginal."""
    rng = np.random.default_rng(0)
    warm, cold = _unit(rng.normal(size=(2, 16)))
    day, night = np.eye(2, 8, dtype=np.float32)
    n = 10
    warm_imgs = _unit(warm + 0.05 * rng.normal(size=(n, 16)))
    cold_imgs = _unit(cold + 0.05 * rng.normal(size=(n, 16)))
    images = np.concatenate([warm_imgs, cold_imgs])  # identical image sets for both models
    prompts_a = np.stack([day] * n + [night] * n)  # A: warm images came from day prompts
    prompts_b = np.stack([night] * n + [day] * n)  # B: warm images came from night prompts
    texts_a = ["day"] * n + ["night"] * n
    texts_b = ["night"] * n + ["day"] * n
    a = build_specification(images, prompts_a, texts_a, encoder="t", gamma=1.0)
    b = build_specification(images, prompts_b, texts_b, encoder="t", gamma=1.0)
    stack = SpecStack.from_specs(["A", "B"], [a, b])
    query = _unit(warm + 0.05 * rng.normal(size=(1, 16)))  # a warm image of a day scene
    baseline = score_queries(stack, query)[0]
    assert baseline[0] == pytest.approx(baseline[1], abs=1e-12)  # the baseline cannot tell
    weighted = score_queries(stack, query, None, day[None])[0]
    assert weighted[0] < weighted[1] - 0.1  # the weighted score picks A
    weighted_night = score_queries(stack, query, None, night[None])[0]
    assert weighted_night[1] < weighted_night[0] - 0.1  # a warm NIGHT image is B's


def test_groups_score_several_images_as_one_requirement():
    specs, _ = _random_specs(3)
    stack = SpecStack.from_specs(["a", "b", "c"], specs)
    z = _unit(np.random.default_rng(2).normal(size=(4, 12)))
    joint = score_queries(stack, z, [[0, 1, 2, 3]])
    assert joint.shape == (1, 3)
    # a group of one image is the same as scoring that image alone
    np.testing.assert_allclose(score_queries(stack, z, [[2]]), score_queries(stack, z)[2:3])


def test_incompatible_specs_are_refused():
    specs, _ = _random_specs(2)
    specs[1].gamma = 2.0
    from gmi.errors import ConflictError

    with pytest.raises(ConflictError):
        SpecStack.from_specs(["a", "b"], specs)
