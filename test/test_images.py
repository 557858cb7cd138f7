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


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_16_bit_big_endian(encoding):
    v = (np.arange(12).reshape(3, 4) * 4096).astype(">u2")
    out = decode_raw(v.tobytes(), height=3, width=4, encoding=encoding, step=8, is_bigendian=1)
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


@pytest.mark.parametrize("ext,params", [(".png", []), (".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])])
def test_encoded_size_reads_the_header_without_decoding(ext, params):
    from dense_warper_ros.images import encoded_size
    img = np.zeros((37, 53, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img, params)
    assert ok and encoded_size(buf.tobytes()) == (53, 37)


def _huge_jpeg_header(width: int, height: int) -> bytes:
    """A JPEG's first segments as a camera would send them: SOI, an APP0 segment, then a baseline
    frame header declaring width x height (the rest of the stream never needs reading)."""
    import struct
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\x00" * 64


def test_an_oversized_or_mismatched_frame_is_refused_before_decoding(monkeypatch):
    from dense_warper_ros import images
    calls = []
    monkeypatch.setattr(images.cv2, "imdecode", lambda *a: calls.append(a))
    with pytest.raises(ImageError) as e:
        images.decode_compressed(_huge_jpeg_header(10000, 10000), "jpeg")
    assert e.value.cause == "too_large"
    with pytest.raises(ImageError) as e:
        images.decode_compressed(_huge_jpeg_header(640, 480), "jpeg", expected=(320, 240))
    assert e.value.cause == "size_mismatch" and "640x480" in str(e.value)
    assert calls == []                                            # no pixel was decoded
    with pytest.raises(ImageError) as e:
        images.decode_raw(b"", height=480, width=640, encoding="rgb8", step=1920, expected=(320, 240))
    assert e.value.cause == "size_mismatch"


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a" + b"\x00" * 40,
                                  b"\xff\xd8\xff\xda" + b"\x00" * 40, b"\xff\xd8\x00"])
def test_broken_headers_are_undecodable(data):
    with pytest.raises(ImageError) as e:
        decode_compressed(data, "png")
    assert e.value.cause == "undecodable"


def test_opencv_prints_nothing_for_a_broken_png(tmp_path):
    """The node counts and logs each bad frame itself; OpenCV's messages would repeat it."""
    import subprocess
    import sys
    ok, png = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8))
    png = png.tobytes()
    bad = png[:60] + bytes([png[60] ^ 0xFF]) + png[61:]        # one byte of the pixel data flipped
    code = ("import sys; from dense_warper_ros.images import decode_compressed, ImageError\n"
            "data = open(sys.argv[1], 'rb').read()\n"
            "for _ in range(3):\n"
            "    try: decode_compressed(data, 'png')\n"
            "    except ImageError as e: print(e.cause)\n")
    (tmp_path / "bad.png").write_bytes(bad)
    np.testing.assert_array_equal(decode_compressed(png, "png").shape, (50, 50, 3))   # the intact one decodes
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "bad.png")], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.split() == ["undecodable"] * 3
    assert out.stderr == ""
