"""Seeded random breakage of valid camera messages, for the fuzz tests and the soak benchmark:
what a hostile or broken camera driver (or 2D detector) can send (sizes, encodings, steps, bytes,
calibration values, stamps, frame ids, 2D people)."""
from __future__ import annotations

import math
import struct

import cv2
import numpy as np


def clone(msg):
    """A fresh message of the same type and fields (data as bytes: a deep copy of rclpy's array
    field does not publish)."""
    out = type(msg)()
    for name in msg.get_fields_and_field_types():
        value = getattr(msg, name)
        setattr(out, name, bytes(value) if name == "data" else value)
    return out


class Mutator:
    """Each call returns a broken copy of a valid message; the same seed gives the same breakage."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pick(self, options):
        return options[int(self.rng.integers(len(options)))]

    def stamp(self, msg) -> None:
        ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
        ns = self.pick([0, ns + 86400 * 10**9, ns - 10 * 10**9, ns + 900_000_000, ns, ns - 50_000_000])
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(max(ns, 0), 10**9)

    def data(self, data: bytes) -> bytes:
        kind = self.pick(["truncate", "extend", "flip", "random", "empty"])
        if kind == "truncate":
            return data[: int(self.rng.integers(0, max(len(data), 1)))]
        if kind == "extend":
            return data + bytes(self.rng.integers(0, 256, int(self.rng.integers(1, 4096)), dtype=np.uint8))
        if kind == "flip" and data:
            b = bytearray(data)
            for i in self.rng.integers(0, len(b), int(self.rng.integers(1, 16))):
                b[i] ^= 0xFF
            return bytes(b)
        if kind == "random":
            return bytes(self.rng.integers(0, 256, int(self.rng.integers(0, 20000)), dtype=np.uint8))
        return b""

    def image(self, msg):
        m = clone(msg)
        for _ in range(int(self.rng.integers(1, 3))):
            field = self.pick(["size", "encoding", "step", "data", "endian", "stamp", "frame_id"])
            if field == "size":
                m.width, m.height = self.pick([(0, 0), (m.width + 1, m.height), (10000, 10000), (m.width, 1),
                                               (2**31 - 1, 2)])
            elif field == "encoding":
                m.encoding = self.pick(["bgr8", "mono8", "mono16", "rgba8", "yuv422", "bayer_rggb8", "", "32FC1"])
            elif field == "step":
                m.step = self.pick([0, max(m.step - 1, 0), m.step * 2, 2**31 - 1])
            elif field == "data":
                m.data = self.data(bytes(m.data))
            elif field == "endian":
                m.is_bigendian = 1 - m.is_bigendian
            elif field == "stamp":
                self.stamp(m)
            else:
                m.header.frame_id = self.pick(["", "no_such_frame", "/" * 3, "x" * 300])
        return m

    def compressed(self, msg):
        m = clone(msg)
        field = self.pick(["data", "data", "huge", "format", "stamp", "png"])
        if field == "data":
            m.data = self.data(bytes(m.data))
        elif field == "huge":                              # a 10000 x 10000 JPEG header
            sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 10000, 10000, 3) + b"\x01\x11\x00" * 3
            m.data = b"\xff\xd8" + sof + bytes(m.data)[2:]
        elif field == "png":
            ok, png = cv2.imencode(".png", self.rng.integers(0, 255, (20, 30, 3), dtype=np.uint8))
            m.data = self.data(png.tobytes())
        elif field == "format":
            m.format = self.pick(["png", "", "tiff", "rgb8; jpeg compressed bgr8"])
        else:
            self.stamp(m)
        return m

    def people(self, msg):
        """A broken copy of a People2D: stamp, layout, image size, ragged or non-finite arrays,
        scores out of range, a huge number of people."""
        m = type(msg)(header=msg.header, layout=msg.layout, image_width=msg.image_width,
                      image_height=msg.image_height, people=[type(p)(x=list(p.x), y=list(p.y), score=list(p.score),
                                                                     detection_score=p.detection_score, box=p.box)
                                                             for p in msg.people])
        field = self.pick(["stamp", "layout", "size", "ragged", "inf", "score", "box", "many", "frame_id"])
        p = m.people[0] if m.people else None
        if field == "layout":
            m.layout = self.pick(["", "coco18", "h36m17 ", "openpose25"])
        elif field == "size":
            m.image_width, m.image_height = self.pick([(1, 1), (m.image_width * 2, m.image_height), (2**31, 7)])
        elif field == "ragged" and p is not None:
            p.x = list(p.x)[:-int(self.rng.integers(1, 17))]
        elif field == "inf" and p is not None:
            p.y = [self.pick([math.inf, -math.inf, 1e38])] + list(p.y)[1:]
        elif field == "score" and p is not None:
            p.score = [self.pick([2.0, -1.0, math.inf])] * len(p.score)
        elif field == "box" and p is not None:
            p.box = [math.nan, 0.0, 1.0, 1.0]
        elif field == "many" and p is not None:
            m.people = [p] * int(self.rng.integers(50, 400))
        elif field == "frame_id":
            m.header.frame_id = self.pick(["", "elsewhere"])
        else:
            self.stamp(m)
        return m

    def info(self, msg):
        m = clone(msg)
        field = self.pick(["k", "d", "r", "p", "model", "size", "frame_id"])
        bad = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300]
        if field == "k":
            k = list(m.k)
            k[int(self.rng.integers(9))] = self.pick(bad)
            m.k = k
        elif field == "d":
            n = int(self.rng.integers(0, 15))
            m.d = [self.pick(bad + [0.1, -0.2]) for _ in range(n)]
        elif field == "r":
            m.r = [self.pick(bad)] * 9
        elif field == "p":
            p = list(m.p)
            p[int(self.rng.integers(12))] = self.pick(bad)
            m.p = p
        elif field == "model":
            m.distortion_model = self.pick(["", "fisheye", "kannala_brandt", "equidistant", "rational_polynomial"])
        elif field == "size":
            m.width, m.height = self.pick([(0, 0), (m.width * 2, m.height), (1, 1)])
        else:
            m.header.frame_id = self.pick(["", "elsewhere"])
        return m
