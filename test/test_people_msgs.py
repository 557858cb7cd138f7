"""2D people in and per-person markers out (`ros/conversions.py`) with the real generated messages:
Person2D -> People2D -> Person2D unchanged in both layouts (through the wire format too), every
malformed message refused with a ValueError naming its field, and markers that give each track its
own colour, its own text id and DELETEs that reach that track alone."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from dense_warper_ros.msg import People2D  # noqa: E402
from dense_warper_ros.people import Person2D, from_coco  # noqa: E402
from dense_warper_ros.pipeline import PoseResult  # noqa: E402
from dense_warper_ros.colors import track_color  # noqa: E402
from dense_warper_ros.ros.conversions import (MARKER_NAMESPACES, delete_markers_for,  # noqa: E402
                                              markers_for, people_from_msg, people_to_msg)
from dense_warper_ros.skeleton import NUM_JOINTS as J  # noqa: E402

STAMP = 12_345_678_901


def h36m_person(seed: int, *, box=None) -> Person2D:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(20, 600, (J, 2)).astype(np.float32).astype(np.float64)   # float32 on the wire
    sc = rng.uniform(0.05, 1.0, J).astype(np.float32).astype(np.float64)
    kp[4] = np.nan                                                               # an unseen joint
    extra = {} if box is None else {"box": np.asarray(box, dtype=np.float64)}
    return Person2D(keypoints=kp, scores=sc, score=float(np.float32(0.8)), extra=extra)


def coco_person(seed: int) -> Person2D:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(20, 600, (J, 2)).astype(np.float32).astype(np.float64)
    sc = rng.uniform(0.05, 1.0, J).astype(np.float32).astype(np.float64)
    kp[3] = np.nan                                                               # left ear unseen
    sc[3] = 0.0
    coco = np.concatenate([kp, sc[:, None]], 1)
    return from_coco(kp, sc, score=0.5, extra={"coco17": coco, "box": np.array([10.0, 20.0, 300.0, 400.0])})


def assert_same_person(a: Person2D, b: Person2D) -> None:
    np.testing.assert_array_equal(a.keypoints, b.keypoints)      # NaN where NaN
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    assert a.score == pytest.approx(b.score, rel=1e-6)
    assert ("box" in a.extra) == ("box" in b.extra)
    if "box" in a.extra:
        np.testing.assert_allclose(a.extra["box"], b.extra["box"], rtol=1e-6)


def wire(msg: People2D) -> People2D:
    """Through CDR and back, as a subscriber receives it."""
    return deserialize_message(serialize_message(msg), People2D)


def test_h36m17_round_trip_keeps_every_joint_score_and_box():
    people = [h36m_person(0, box=[1.5, 2.0, 640.0, 480.0]), h36m_person(1)]
    msg = people_to_msg(people, frame_id="cam0_optical", stamp_ns=STAMP, width=640, height=480)
    assert isinstance(msg, People2D)
    assert msg.layout == "h36m17" and (msg.image_width, msg.image_height) == (640, 480)
    assert msg.header.frame_id == "cam0_optical"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (12, 345_678_901)
    assert len(msg.people) == 2 and all(len(p.x) == len(p.y) == len(p.score) == J for p in msg.people)
    assert math.isnan(msg.people[0].x[4]) and msg.people[0].score[4] == 0.0
    assert list(msg.people[1].box) == [0.0] * 4                           # no detector box: all zero
    back = people_from_msg(wire(msg))
    assert len(back) == 2
    for a, b in zip(people, back):
        assert_same_person(a, b)


def test_coco17_round_trip_goes_through_from_coco_and_keeps_the_coco_keypoints():
    people = [coco_person(2), coco_person(3)]
    msg = people_to_msg(people, frame_id="cam1_optical", stamp_ns=STAMP, layout="coco17")
    assert msg.layout == "coco17" and (msg.image_width, msg.image_height) == (0, 0)
    np.testing.assert_allclose(list(msg.people[0].x), people[0].extra["coco17"][:, 0], rtol=1e-6)
    back = people_from_msg(wire(msg))
    for a, b in zip(people, back):
        assert_same_person(a, b)
        np.testing.assert_array_equal(a.extra["coco17"], b.extra["coco17"])
    # and again: what came in as COCO goes out as the same COCO
    again = people_to_msg(back, frame_id="cam1_optical", stamp_ns=STAMP, layout="coco17")
    assert serialize_message(again) == serialize_message(msg)


def test_an_empty_message_is_nobody_and_h36m_persons_cannot_be_sent_as_coco():
    assert people_from_msg(people_to_msg([], frame_id="c", stamp_ns=0)) == []
    with pytest.raises(ValueError, match=r"people\[0\] has no extra\['coco17'\]"):
        people_to_msg([h36m_person(0)], frame_id="c", stamp_ns=0, layout="coco17")
    with pytest.raises(ValueError, match="layout 'openpose25'"):
        people_to_msg([], frame_id="c", stamp_ns=0, layout="openpose25")


def test_a_nan_score_is_unseen_and_a_nan_coordinate_zeroes_its_score():
    msg = people_to_msg([h36m_person(5)], frame_id="c", stamp_ns=0)
    msg.people[0].score[2] = math.nan
    msg.people[0].y[6] = math.nan                                # x finite, y not: unseen
    (p,) = people_from_msg(msg)
    assert p.scores[2] == 0.0 and p.scores[6] == 0.0 and p.scores[4] == 0.0


def _broken(edit) -> People2D:
    msg = people_to_msg([h36m_person(0), h36m_person(1)], frame_id="c", stamp_ns=0)
    edit(msg, msg.people[1])
    return msg


def _set(name, value):
    return lambda m, p: setattr(p, name, value)


def _item(name, k, value):
    def edit(m, p):
        getattr(p, name)[k] = value
    return edit


REFUSALS = {
    "unknown layout": (lambda m, p: setattr(m, "layout", "body25"), r"layout 'body25' is not one of"),
    "empty layout": (lambda m, p: setattr(m, "layout", ""), r"layout '' is not one of"),
    "short x": (_set("x", [1.0] * 16), r"people\[1\]\.x has 16 entries, expected 17"),
    "long y": (_set("y", [1.0] * 18), r"people\[1\]\.y has 18 entries, expected 17"),
    "no scores": (_set("score", []), r"people\[1\]\.score has 0 entries, expected 17"),
    "infinite x": (_item("x", 3, math.inf), r"people\[1\]\.x\[3\] is inf: coordinates must be finite"),
    "infinite y": (_item("y", 0, -math.inf), r"people\[1\]\.y\[0\] is -inf"),
    "score above 1": (_item("score", 7, 1.5), r"people\[1\]\.score\[7\] is 1\.5, outside \[0, 1\]"),
    "negative score": (_item("score", 0, -0.25), r"people\[1\]\.score\[0\] is -0\.25, outside"),
    "infinite score": (_item("score", 2, math.inf), r"people\[1\]\.score\[2\] is inf, outside"),
    "detection score": (_set("detection_score", 2.0), r"people\[1\]\.detection_score is 2\.0, outside"),
    "box with NaN": (_item("box", 1, math.nan), r"people\[1\]\.box is .*: expected finite"),
    "box inside out": (_set("box", [50.0, 10.0, 40.0, 20.0]), r"people\[1\]\.box is \[50\.0, 10\.0, 40\.0"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_malformed_message_is_refused_naming_the_field(case):
    edit, match = REFUSALS[case]
    with pytest.raises(ValueError, match=match):
        people_from_msg(_broken(edit))


def test_refusals_apply_to_coco17_too():
    msg = people_to_msg([coco_person(2)], frame_id="c", stamp_ns=0, layout="coco17")
    msg.people[0].score = [0.5] * 10
    with pytest.raises(ValueError, match=r"people\[0\]\.score has 10 entries, expected 17 for layout 'coco17'"):
        people_from_msg(msg)


# --- markers ---------------------------------------------------------------------------------------
def pose(track_id: int, shift: float = 0.0) -> PoseResult:
    pts = np.random.default_rng(track_id).normal(0, 0.3, (J, 3)) + [shift, 0.0, 1.0]
    return PoseResult(stamp_ns=STAMP, points=pts, confidence=np.full(J, 0.9),
                      covariance=np.tile(np.eye(3) * 1e-4, (J, 1, 1)), num_views=np.full(J, 3),
                      view_stamps_ns=(STAMP,), view_frame_ids=("cam0_optical",), track_id=track_id)


def _rgb(m: Marker) -> tuple[float, float, float]:
    return (m.color.r, m.color.g, m.color.b)


def test_two_tracks_get_their_own_colour_and_text_id():
    arr = markers_for([pose(3), pose(4, 1.5)], frame_id="world", stamp_ns=STAMP)
    by_key = {(m.ns, m.id): m for m in arr.markers}
    assert len(by_key) == len(arr.markers) == 6                       # no marker overwrites another
    assert set(by_key) == {(ns, t) for ns in MARKER_NAMESPACES for t in (3, 4)}
    for t in (3, 4):
        assert _rgb(by_key["joints", t]) == pytest.approx(track_color(t))
        label = by_key["label", t]
        assert label.type == Marker.TEXT_VIEW_FACING and str(t) in label.text
        head = pose(t, 1.5 if t == 4 else 0.0).points[10]
        assert label.pose.position.z > head[2]                        # above the head
    assert _rgb(by_key["joints", 3]) != pytest.approx(_rgb(by_key["joints", 4]))
    assert _rgb(by_key["bones", 3]) != pytest.approx(_rgb(by_key["bones", 4]))
    assert _rgb(by_key["label", 3]) != pytest.approx(_rgb(by_key["label", 4]))


def test_a_track_keeps_its_colour_and_the_palette_has_ten_distinct_colours():
    first = markers_for([pose(6)], frame_id="world", stamp_ns=0).markers[0]
    later = markers_for([pose(6, 2.0), pose(1)], frame_id="world", stamp_ns=10**9).markers[0]
    assert _rgb(first) == _rgb(later)
    assert len({track_color(t) for t in range(10)}) == 10


def test_delete_markers_for_removes_exactly_one_tracks_markers():
    drawn = markers_for([pose(3), pose(4, 1.5)], frame_id="world", stamp_ns=STAMP)
    gone = delete_markers_for([4], frame_id="world", stamp_ns=STAMP + 1)
    assert all(m.action == Marker.DELETE and m.header.frame_id == "world" for m in gone.markers)
    assert {(m.ns, m.id) for m in gone.markers} == {(m.ns, m.id) for m in drawn.markers if m.id == 4}
    assert len(gone.markers) == len(MARKER_NAMESPACES)
    assert delete_markers_for([], frame_id="world", stamp_ns=0).markers == []
    # a track id beyond int32 wraps the same way when drawn and when deleted
    big = 2**31 + 5
    assert ({(m.ns, m.id) for m in markers_for([pose(big)], frame_id="w", stamp_ns=0).markers}
            == {(m.ns, m.id) for m in delete_markers_for([big], frame_id="w", stamp_ns=0).markers})
