import numpy as np
import pytest

from gmi.spec.kernels import gaussian_kernel, median_heuristic_gamma, squared_distances
from gmi.spec.rkme import build_reduced_set, kmeans, mmd_gradient, mmd_squared, solve_beta


def _data(n: int = 120, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, d))
    x = centres[rng.integers(0, 5, n)] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_squared_distances_match_direct_formula():
    x = _data(10)
    y = _data(7, seed=1)
    direct = ((x[:, None, :].astype(np.float64) - y[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(squared_distances(x, y), direct, atol=1e-10)
    assert squared_distances(x, y).dtype == np.float64
    assert np.allclose(np.diag(gaussian_kernel(x, x, 2.0)), 1.0)


def test_median_heuristic_is_inverse_median_distance():
    x = _data(50)
    d2 = squared_distances(x, x)[np.triu_indices(50, 1)]
    assert median_heuristic_gamma(x) == pytest.approx(1 / np.median(d2))
    with pytest.raises(ValueError):
        median_heuristic_gamma(np.ones((5, 3)))


def test_reduced_set_beats_random_subsets_of_same_size():
    x = _data()
    gamma = median_heuristic_gamma(x)
    reduced = build_reduced_set(x, 10, gamma)
    ours = mmd_squared(x, reduced.points, reduced.beta, gamma)
    rng = np.random.default_rng(0)
    for _ in range(20):
        subset = x[rng.choice(len(x), 10, replace=False)]
        random_mmd = mmd_squared(x, subset, np.full(10, 0.1), gamma)
        assert ours < random_mmd
    assert (reduced.beta >= 0).all()
    assert reduced.points.dtype == np.float32 and reduced.beta.dtype == np.float64


def test_gradient_steps_do_not_raise_the_mmd():
    x = _data()
    gamma = median_heuristic_gamma(x)
    c = kmeans(x.astype(np.float64), 10, 10, np.random.default_rng(0))
    after_kmeans = mmd_squared(x, c, solve_beta(x, c, gamma), gamma)
    reduced = build_reduced_set(x, 10, gamma, seed=0)
    assert mmd_squared(x, reduced.points, reduced.beta, gamma) <= after_kmeans + 1e-12


def test_gradient_matches_finite_differences():
    x = _data(40, 6).astype(np.float64)
    gamma = 1.3
    rng = np.random.default_rng(3)
    c = rng.normal(size=(4, 6))
    beta = rng.uniform(0.1, 0.4, 4)
    grad = mmd_gradient(x, c, beta, gamma)
    eps = 1e-6
    numeric = np.zeros_like(c)
    for j in range(4):
        for k in range(6):
            plus, minus = c.copy(), c.copy()
            plus[j, k] += eps
            minus[j, k] -= eps
            numeric[j, k] = (
                mmd_squared(x, plus, beta, gamma) - mmd_squared(x, minus, beta, gamma)
            ) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_kmeans_reseeds_empty_clusters():
    # 3 distinct points, 3 clusters, duplicated data: no centre may stay empty or zero
    x = np.repeat(np.eye(3), 10, axis=0)
    centres = kmeans(x, 3, 5, np.random.default_rng(0))
    assert sorted(map(tuple, np.round(centres, 6))) == sorted(map(tuple, np.eye(3)))


def test_one_point_per_image_is_exact():
    x = _data(20)
    reduced = build_reduced_set(x, 50, 1.0)
    assert reduced.points.shape == x.shape
    assert mmd_squared(x, reduced.points, reduced.beta, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_simplex_beta_is_on_the_simplex_and_costs_mmd():
    """learnware's constraint (beta >= 0, sum 1): honoured exactly, and never better than the
    free mass gmi keeps (the optimum over a larger set)."""
    x = np.random.default_rng(3).normal(size=(300, 12))
    gamma = 1.0 / 24
    free = build_reduced_set(x, 10, gamma)
    simplex = build_reduced_set(x, 10, gamma, simplex=True)
    assert np.all(simplex.beta >= 0) and abs(simplex.beta.sum() - 1.0) < 1e-12
    assert mmd_squared(x, free.points, free.beta, gamma) <= mmd_squared(
        x, simplex.points, simplex.beta, gamma
    )
    fixed = solve_beta(x, simplex.points, gamma, simplex=True)
    assert abs(fixed.sum() - 1.0) < 1e-12 and np.all(fixed >= 0)
