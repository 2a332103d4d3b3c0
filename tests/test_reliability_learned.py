"""D1 (reliability round three): a learned part must never take the hub down.

One ordinary 3-image submission made LAPACK's divide-and-conquer SVD raise "SVD did not
converge" in the image-to-prompt ridge; the model was committed and afterwards identify,
check, check --repair and serve all died with a traceback. The real 801 x 1056 pair-feature
matrix is tests/fixtures/svd_nonconvergence_x.npz.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import hub_copy
from gmi.spec.ridge import RidgeModel, RidgeStatistics, gram_svd

FIXTURE = Path(__file__).parent / "fixtures" / "svd_nonconvergence_x.npz"


def test_ridge_fits_the_matrix_whose_svd_does_not_converge():
    with np.load(FIXTURE, allow_pickle=False) as data:
        x = data["x"].astype(np.float64)
    centred = x - x.mean(axis=0)
    try:
        np.linalg.svd(centred, full_matrices=False)
        print("numpy's SVD converges on this machine's LAPACK; the fit must still work")
    except np.linalg.LinAlgError:
        print("numpy's SVD raises LinAlgError here, as on the red team's hub")
    y = np.random.default_rng(0).normal(size=(x.shape[0], 16))
    model = RidgeModel.fit(x, y)
    assert np.isfinite(model.weights).all() and model.penalty > 0
    reference = RidgeStatistics.empty(x.shape[1], 16).add(x, y).solve()
    np.testing.assert_allclose(model.predict(x[:8]), reference.predict(x[:8]), atol=1e-6)


@pytest.mark.parametrize("shape", [(30, 80), (80, 30)])
def test_gram_svd_is_a_thin_svd(shape):
    x = np.random.default_rng(1).normal(size=shape)
    u, s, vt = gram_svd(x)
    np.testing.assert_allclose((u * s) @ vt, x, atol=1e-9)
    np.testing.assert_allclose(s, np.linalg.svd(x, compute_uv=False)[: s.size], rtol=1e-9)


def test_a_failing_learned_part_degrades_with_a_warning(
    tmp_path, pristine_hub, submissions, query_images, monkeypatch, caplog
):
    """Every solver failing (the worst case): submit still commits, identify still ranks (the
    interrogator asks for uniform weights), check passes, and one warning says why."""
    from gmi.hub import Hub
    from gmi.registry.check import check_registry

    home = hub_copy(pristine_hub, tmp_path / "hub")

    def diverge(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(RidgeModel, "fit", classmethod(lambda cls, *a, **k: diverge()))
    monkeypatch.setattr(RidgeStatistics, "solve", diverge)
    hub = Hub(home)
    with caplog.at_level(logging.WARNING, logger="gmi"):
        hub.submit_folder("unlucky", submissions["neon-base"], progress=False)
        result = hub.identify([query_images["neon-base"]], top=4)[0]
    assert "could not be fitted" in caplog.text
    assert result.results[0].model == "unlucky"
    report = check_registry(hub.registry(), repair=False)
    assert report.consistent, report
    stated = hub.identify([query_images["ink-base"]], top=4, prompt="an ink drawing")[0]
    assert stated.results  # a stated prompt weighs points uniformly without its ridge
