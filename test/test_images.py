"""Image decoding: every supported encoding gives the same RGB; malformed input raises ImageError
with a cause key (the node counts drops by it)."""
import cv2
import numpy as np
import pytest

from dense_warper_ros.images import ImageError, decode_compressed, decode_raw, encode_raw


@pytest.fixture()
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)


def test_rgb_bgr_bgra_and_padded_rows_decode_to_the_same_rgb(rgb):
    data, step = encode_raw(rgb, "rgb8")
    np.testing.assert_array_equal(decode_raw(data, height=6, width=10, encoding="rgb8", step=step), rgb)
    data, step = encode_raw(rgb, "bgr8")
    np.testing.assert_array_equal(decode_raw(data, height=6, width=10, encoding="bgr8", step=step), rgb)
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    np.testing.assert_array_equal(decode_raw(bgra.tobytes(), height=6, width=10, encoding="bgra8", step=40), rgb)
    padded = np.zeros((6, 32), np.uint8)                       # step 32 > 30: row padding
    padded[:, :30] = rgb.reshape(6, 30)
    np.testing.assert_array_equal(decode_raw(padded.tobytes(), height=6, width=10, encoding="rgb8", step=32), rgb)


def test_mono16_big_endian():
    v = (np.arange(12).reshape(3, 4) * 4096).astype(">u2")
    out = decode_raw(v.tobytes(), height=3, width=4, encoding="mono16", step=8, is_bigendian=1)
    np.testing.assert_array_equal(out[..., 0], (v.astype(np.uint16) >> 8).astype(np.uint8))


@pytest.mark.parametrize("kw,cause", [
    (dict(encoding="bayer_rggb8"), "unknown_encoding"),
    (dict(height=0), "zero_size"),
    (dict(step=20), "bad_step"),
    (dict(height=7), "short_data"),
])
def test_malformed_raw_images_raise_with_cause(rgb, kw, cause):
    data, step = encode_raw(rgb)
    args = dict(height=6, width=10, encoding="rgb8", step=step) | kw
    with pytest.raises(ImageError) as e:
        decode_raw(data, **args)
    assert e.value.cause == cause


def test_compressed(rgb):
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(decode_compressed(png.tobytes(), "png"), rgb)
    with pytest.raises(ImageError) as e:
        decode_compressed(b"not an image", "jpeg")
    assert e.value.cause == "undecodable"
