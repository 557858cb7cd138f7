"""Image decoding for the node, without ROS: raw sensor_msgs/Image fields or compressed bytes ->
an RGB uint8 array. Every malformed input raises `ImageError` naming what is wrong, so the node
can count and log it per cause instead of crashing.
"""
from __future__ import annotations

import cv2
import numpy as np


class ImageError(ValueError):
    """A frame that cannot be decoded; `.cause` is a short key for counting."""

    def __init__(self, cause: str, detail: str):
        super().__init__(f"{cause}: {detail}")
        self.cause = cause


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
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),        # ROS's yuv422 is UYVY
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2RGB_YUY2),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


def decode_raw(data, *, height: int, width: int, encoding: str, step: int,
               is_bigendian: int = 0) -> np.ndarray:
    """sensor_msgs/Image fields -> (H, W, 3) RGB uint8. `data` may be bytes or a memoryview."""
    if encoding not in _ENCODINGS:
        raise ImageError("unknown_encoding", f"encoding {encoding!r} is not one of {SUPPORTED_ENCODINGS}")
    if height <= 0 or width <= 0:
        raise ImageError("zero_size", f"image size {width}x{height}")
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


def decode_compressed(data, fmt: str = "") -> np.ndarray:
    """CompressedImage bytes (jpeg/png) -> (H, W, 3) RGB uint8."""
    buf = np.frombuffer(data, np.uint8)
    if buf.size == 0:
        raise ImageError("zero_size", "empty compressed image")
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
