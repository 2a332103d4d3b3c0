import numpy as np
import pytest

from gmi.errors import CorruptSpecError
from gmi.spec.specification import Specification, build_specification


def _spec(n_points=None) -> Specification:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 10)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    q = rng.normal(size=(30, 6)).astype(np.float32)
    return build_specification(z, q, [f"p{i}" for i in range(30)], encoder="enc", n_points=n_points)


@pytest.mark.parametrize("n_points", [None, 8])
def test_round_trip(tmp_path, n_points):
    spec = _spec(n_points)
    path = tmp_path / "s.safetensors"
    path.write_bytes(spec.to_bytes())
    back = Specification.load(path)
    for name, array in spec.arrays().items():
        np.testing.assert_array_equal(getattr(back, name), array)
        assert getattr(back, name).dtype == array.dtype
    assert back.prompt_texts == spec.prompt_texts
    assert (back.gamma, back.encoder, back.prompt_set) == (
        spec.gamma,
        spec.encoder,
        spec.prompt_set,
    )
    assert back.n_points == (n_points or 30)
    assert np.allclose(np.linalg.norm(back.point_prompts, axis=1), 1.0, atol=1e-5)


def test_file_is_safetensors_not_pickle(tmp_path):
    data = _spec().to_bytes()
    header_len = int.from_bytes(data[:8], "little")
    assert data[8:9] == b"{" and b'"gmi"' in data[8 : 8 + header_len]
    assert not data.startswith(b"\x80")  # pickle protocol marker


def test_tampered_or_truncated_file_is_refused(tmp_path):
    data = bytearray(_spec().to_bytes())
    path = tmp_path / "s.safetensors"
    path.write_bytes(bytes(data[:-7]))
    with pytest.raises(CorruptSpecError):
        Specification.load(path)
    data[-3] ^= 0xFF  # flip bits inside the arrays: checksum must catch it
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptSpecError, match="checksum"):
        Specification.load(path)
    path.write_bytes(b"not a spec")
    with pytest.raises(CorruptSpecError):
        Specification.load(path)


def test_bytes_from_a_worker_are_checked_like_a_file():
    """submit-many's tasks send specs as bytes: the driver refuses damaged ones the same way."""
    data = _spec(8).to_bytes()
    back = Specification.from_bytes(data, "model 'm'")
    np.testing.assert_array_equal(back.points, _spec(8).points)
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    for bad in (data[:-7], bytes(flipped), b"not a spec", b""):
        with pytest.raises(CorruptSpecError, match=r"^model 'm': "):
            Specification.from_bytes(bad, "model 'm'")
