"""The hub-trained attribution encoder (issue 26 step 2): deterministic training, weights as
hub state, `gmi train` switching a real hub over, and what happens when the weights go."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SMALL_ZOO, hub_copy, run_gmi
from gmi.attribution.network import AttributionNet, NetworkConfig
from gmi.attribution.training import TrainingConfig, TrainingSet, train_network
from gmi.attribution.weights import TrainedWeights, weights_path
from gmi.encoders import load_encoder
from gmi.encoders.batches import encode_in_batches
from gmi.errors import CorruptRegistryError
from gmi.hub import Hub
from gmi.zoo import load_prompt_set, load_zoo

TINY = NetworkConfig(widths=(8, 8, 8, 8, 8), embedding_dim=16, canonical_side=64)
QUICK = TrainingConfig(steps=4, models_per_batch=3, images_per_model=2, views_per_image=1)


@pytest.fixture(scope="module")
def zoo_images() -> list[list[Image.Image]]:
    prompts = list(load_prompt_set())[:6]
    return [[load_zoo()[m].generate(p, seed=i) for i, p in enumerate(prompts)] for m in SMALL_ZOO]


def state(net: AttributionNet) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def test_training_is_deterministic_per_seed(zoo_images):
    data = TrainingSet.in_memory(zoo_images)
    first = state(train_network(data, TINY, QUICK, progress=False).network)
    again = state(train_network(data, TINY, QUICK, progress=False).network)
    other = TrainingConfig(**{**QUICK.to_json(), "seed": 1})
    different = state(train_network(data, TINY, other, progress=False).network)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert any(not np.array_equal(first[k], different[k]) for k in first)


def test_training_lowers_the_loss_on_separable_models(zoo_images):
    data = TrainingSet.in_memory(zoo_images)
    config = TrainingConfig(steps=60, models_per_batch=4, images_per_model=4, views_per_image=2)
    trained = train_network(data, TINY, config, progress=False)
    assert trained.report.final_accuracy > 0.5  # 4 distinct families: chance is 0.25
    assert trained.report.models == len(SMALL_ZOO)


def test_weights_round_trip_as_safetensors_without_pickle(zoo_images, tmp_path):
    trained = train_network(TrainingSet.in_memory(zoo_images), TINY, QUICK, progress=False)
    data = trained.weights("offline:style+palette").to_bytes()
    assert b"pickle" not in data[:200] and data[8:9] == b"{"  # a safetensors JSON header
    loaded = TrainedWeights.from_bytes(data, "weights")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded.network(x), trained.network(x))
    assert loaded.base_encoder == "offline:style+palette"
    with pytest.raises(CorruptRegistryError, match="not usable"):
        TrainedWeights.from_bytes(data[:-10], "weights")


def test_trained_features_do_not_depend_on_the_batch(zoo_images, tmp_path):
    trained = train_network(TrainingSet.in_memory(zoo_images), TINY, QUICK, progress=False)
    path = tmp_path / "w.safetensors"
    path.write_bytes(trained.weights("pixels").to_bytes())
    encoder = load_encoder(f"trained:{path}")
    images = [im for model in zoo_images for im in model][:20]
    together = encode_in_batches(encoder, images, progress=False)
    alone = encode_in_batches(encoder, images[3:4], progress=False)
    assert together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(together[3], alone[0])


def test_gmi_train_switches_the_hub_and_later_submits_use_it(
    pristine_hub, submissions, query_images, tmp_path
):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    out = run_gmi("train", "--steps", "3", "--json", "--quiet", home=home, check=True)
    result = json.loads(out.stdout)
    encoder = result["encoder"]
    assert encoder.startswith("trained:") and result["base_encoder"] == "offline:style+palette"
    assert result["models"] == 3 and result["reencode"]["models"] == 3
    hub = Hub(home)
    assert hub.settings().encoder == encoder
    assert {r.encoder for r in hub.models()} == {encoder}
    digest = encoder.split(":")[1]
    assert weights_path(home, digest).is_file()
    [found] = hub.identify([query_images["ink-base"]], top=3)
    assert len(found.results) == 3
    assert json.loads(run_gmi("check", "--json", home=home).stdout)["since_training"] == []
    # a model the network never saw: encoded with it, and the hub says it was not trained on
    added = run_gmi("submit", "neon-base", "--images", str(submissions["neon-base"]), "--quiet",
                    home=home, check=True)  # fmt: skip
    assert "submitted after the encoder was trained (neon-base)" in added.stderr
    assert "gmi train again" in added.stderr
    assert hub.info("neon-base")[1].encoder == encoder
    report = json.loads(run_gmi("check", "--json", home=home).stdout)
    assert report["consistent"] and report["since_training"] == ["neon-base"]
    # training again starts from the same frozen base, not from the trained encoder
    again = json.loads(run_gmi("train", "--steps", "3", "--seed", "1", "--json", "--quiet",
                               home=home, check=True).stdout)  # fmt: skip
    assert again["base_encoder"] == "offline:style+palette" and again["models"] == 4
    assert json.loads(run_gmi("check", "--json", home=home).stdout)["since_training"] == []
    text = run_gmi("check", home=home).stdout
    assert "submitted after" not in text


def test_missing_weights_are_one_clear_error_and_check_names_them(
    pristine_hub, tmp_path, query_images
):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    encoder = json.loads(
        run_gmi("train", "--steps", "2", "--json", "--quiet", home=home, check=True).stdout
    )["encoder"]
    weights_path(home, encoder.split(":")[1]).write_bytes(b"damaged")
    out = run_gmi("identify", str(query_images["ink-base"]), home=home)
    assert out.returncode == 5 and out.stderr.count("\n") == 1
    assert "trained encoder" in out.stderr and "Traceback" not in out.stderr
    report = json.loads(run_gmi("check", "--json", home=home).stdout)
    assert not report["consistent"]
    assert any(p.startswith("encoder:") and "damaged" in p for p in report["problems"])


def test_train_refuses_a_hub_without_kept_images(tmp_path, submissions):
    home = tmp_path / "hub"
    hub = Hub(home, keep_images="none")
    for name in SMALL_ZOO[:2]:
        hub.submit_folder(name, submissions[name], progress=False)
    out = run_gmi("train", "--steps", "2", home=home)
    assert out.returncode == 2 and "no kept images" in out.stderr
    assert Hub(home).settings().encoder == "offline:style+palette"
