"""Image decoding for the node, without ROS: raw sensor_msgs/Image fields or compressed bytes ->
an RGB uint8 array. Every malformed input raises `ImageError` naming what is wrong, so the node
can count and log it per cause instead of crashing.
"""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

# The node counts and logs every undecodable frame itself, per camera and throttled; OpenCV's own
# decoder messages would repeat each of them, unthrottled, on stderr.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

MAX_PIXELS = 64_000_000      # a frame larger than this is refused before any decode (8K is 33 MP)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8 and CC are other segments
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """A frame that cannot be decoded; `.cause` is a short key for counting."""

    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.detail = detail


# encoding -> (channels, dtype, cv2 conversion to RGB or None)
_ENCODINGS: dict[str, tuple[int, type, int | None]] = {
    "rgb8": (3, np.uint8, None),
    "bgr8": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2RGB),
    "mono8": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, np.uint8, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, np.uint8, cv2.COLOR_BGR2RGB),
    "mono16": (1, np.uint16, cv2.COLOR_GRAY2RGB),
    "16UC1": (1, np.uint16, cv2.COLOR_GRAY2RGB),          # e.g. infrared or raw 16-bit sensors
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),        # ROS's yuv422 is UYVY
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


def decode_raw(data, *, height: int, width: int, encoding: str, step: int, is_bigendian: int = 0,
               expected: tuple[int, int] | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image fields -> (H, W, 3) RGB uint8. `data` may be bytes or a memoryview.
    `expected`: the CameraInfo's (width, height), checked before any pixel is touched."""
    if encoding not in _ENCODINGS:
        raise ImageError("unknown_encoding", f"encoding {encoding!r} is not one of {SUPPORTED_ENCODINGS}")
    check_size(width, height, expected=expected, max_pixels=max_pixels)
    ch, dtype, conv = _ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row = width * ch * itemsize
    if step < row:
        raise ImageError("bad_step", f"step {step} < width*channels*bytes = {row} ({encoding}, {width} px)")
    buf = np.frombuffer(data, np.uint8)
    if buf.size < step * height:
        raise ImageError("short_data", f"{buf.size} bytes < step*height = {step * height}")
    rows = buf[:step * height].reshape(height, step)[:, :row]
    img = np.ascontiguousarray(rows).view(dtype)
    if itemsize > 1 and bool(is_bigendian) == np.little_endian:   # byte order differs from ours
        img = img.byteswap()
    img = img.reshape(height, width, ch) if ch > 1 else img.reshape(height, width)
    if dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if conv is None:
        return img
    return cv2.cvtColor(img, conv)


def encoded_size(data) -> tuple[int, int]:
    """(width, height) from a PNG or JPEG header, without decoding the pixels, so an oversized or
    mismatched frame costs nothing. Raises ImageError for anything else."""
    head = bytes(memoryview(data)[:24])
    if head.startswith(_PNG_SIGNATURE):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise ImageError("undecodable", "PNG without an IHDR chunk first")
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(memoryview(data))
    raise ImageError("undecodable", f"not a PNG or JPEG stream (starts {head[:8].hex()})")


def _jpeg_size(buf: memoryview) -> tuple[int, int]:
    """Walk the JPEG segments to the first start-of-frame; its header holds height then width."""
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            raise ImageError("undecodable", f"JPEG segment marker expected at byte {i}")
        marker = buf[i + 1]
        if marker == 0xFF:                  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:   # segments without a length
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _JPEG_SOF:
            if i + 9 > n or length < 7:
                break
            height, width = struct.unpack(">HH", bytes(buf[i + 5:i + 9]))
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:   # end of image or scan data before any frame header
            break
        i += 2 + length
    raise ImageError("undecodable", "JPEG without a frame header")


def _check_png_chunks(buf: memoryview) -> None:
    """Every PNG chunk complete and matching its CRC. libpng reports a corrupt chunk on stderr by
    itself, past OpenCV's log level; checked here, the frame is refused quietly and counted."""
    i, n = 8, len(buf)
    while i + 12 <= n:
        length = struct.unpack(">I", buf[i:i + 4])[0]
        end = i + 8 + length
        if end + 4 > n:
            break
        if zlib.crc32(buf[i + 4:end]) != struct.unpack(">I", buf[end:end + 4])[0]:
            raise ImageError("undecodable", f"PNG chunk {bytes(buf[i + 4:i + 8])!r} at byte {i} fails its CRC")
        if bytes(buf[i + 4:i + 8]) == b"IEND":
            return
        i = end + 4
    raise ImageError("undecodable", f"PNG stream cut short at byte {i} of {n}")


def check_size(width: int, height: int, *, expected: tuple[int, int] | None = None,
               max_pixels: int = MAX_PIXELS) -> None:
    """Refuse a frame by its declared size before decoding it: zero, over `max_pixels`, or not
    the (width, height) its CameraInfo states."""
    if width <= 0 or height <= 0:
        raise ImageError("zero_size", f"image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError("too_large", f"image {width}x{height} has over {max_pixels} pixels")
    if expected is not None and (width, height) != tuple(expected):
        raise ImageError("size_mismatch", f"image {width}x{height} != CameraInfo {expected[0]}x{expected[1]}")


def decode_compressed(data, fmt: str = "", *, expected: tuple[int, int] | None = None,
                      max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """CompressedImage bytes (jpeg/png) -> (H, W, 3) RGB uint8. The header's size is checked
    (`check_size`) before the pixels are decoded."""
    buf = np.frombuffer(data, np.uint8)
    if buf.size == 0:
        raise ImageError("zero_size", "empty compressed image")
    check_size(*encoded_size(buf), expected=expected, max_pixels=max_pixels)
    if buf[:8].tobytes() == _PNG_SIGNATURE:
        _check_png_chunks(memoryview(buf))
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise ImageError("undecodable", f"OpenCV could not decode {buf.size} bytes (format {fmt!r})")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_raw(rgb: np.ndarray, encoding: str = "rgb8") -> tuple[bytes, int]:
    """(H, W, 3) RGB uint8 -> (data, step) for a sensor_msgs/Image of `encoding` (rgb8 or bgr8)."""
    if encoding == "bgr8":
        rgb = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif encoding != "rgb8":
        raise ValueError(f"encode_raw supports rgb8 and bgr8, not {encoding!r}")
    rgb = np.ascontiguousarray(rgb)
    return rgb.tobytes(), rgb.shape[1] * 3
