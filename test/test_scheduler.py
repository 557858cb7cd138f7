"""The live scheduler: per camera the newest frame wins, cameras take turns, offline keeps all."""
import threading
import time

import pytest

from dense_warper_ros.scheduler import FrameScheduler


def drain(s: FrameScheduler) -> list:
    out = []
    while (got := s.get(timeout=0)) is not None:
        out.append(got)
    return out


def test_live_keeps_newest_per_camera_and_reports_superseded():
    s = FrameScheduler(3, depth=1)
    assert s.put(0, 100, "a0") == []
    assert s.put(0, 200, "a1") == ["a0"]          # camera 0's older frame is superseded
    assert s.put(1, 150, "b0") == []
    assert len(s) == 2
    assert drain(s) == [(1, "b0"), (0, "a1")]     # oldest head first


def test_live_overload_is_fair_across_cameras():
    """A worker 3x slower than 6 interleaved cameras: every camera still gets its share."""
    cams, s, done = 6, FrameScheduler(6, depth=1), []
    for k in range(600):                               # 6 cameras interleaved, one frame per tick
        s.put(k % cams, k, k)
        if k % 3 == 2:                                 # the worker finishes one frame every 3 ticks
            done.append(s.get(timeout=0))
    per_cam = [sum(1 for c, _ in done if c == i) for i in range(cams)]
    assert max(per_cam) - min(per_cam) <= 1, per_cam
    stamps = [k for _, k in done]
    assert stamps == sorted(stamps), "frames are handed out in stamp order"
    # every processed frame is recent: at most one camera period (6 ticks) old
    assert all(k >= tick - 6 for k, tick in zip(stamps, range(2, 600, 3)))


@pytest.mark.parametrize("ratio", [1, 2, 4, 5])
def test_live_in_order_and_fair_at_any_overload(ratio):
    cams, s, done = 4, FrameScheduler(4, depth=1), []
    for k in range(400):
        s.put(k % cams, k, k)
        if k % ratio == ratio - 1:
            done.append(s.get(timeout=0))
    per_cam = [sum(1 for c, _ in done if c == i) for i in range(cams)]
    assert max(per_cam) - min(per_cam) <= 1, per_cam
    stamps = [k for _, k in done]
    assert stamps == sorted(stamps)
    if ratio == 1:
        assert stamps == list(range(400)), "no overload: every frame, in order"


def test_live_after_a_stall_newer_frames_first_and_a_late_camera_still_served():
    """After a stall every camera has a head waiting: the least recently served camera is taken,
    then heads newer than it before older ones (an older one would reach the buffer too late for a
    pose of its own, and its camera's next frame supersedes it meanwhile). A head older than the
    last frame is still taken when nothing newer waits: a camera whose stamps run behind is served."""
    s = FrameScheduler(3, depth=1)
    for c in range(3):
        s.put(c, c + 1, f"{c}@{c + 1}")
    assert [c for c, _ in drain(s)] == [0, 1, 2]
    for c, stamp in ((0, 4), (1, 5), (2, 6), (0, 7)):              # the worker is busy meanwhile
        s.put(c, stamp, f"{c}@{stamp}")
    assert s.get(timeout=0) == (0, "0@7")                          # served least recently
    assert s.put(2, 9, "2@9") == ["2@6"]
    assert s.get(timeout=0) == (2, "2@9"), "newer than the last frame: before camera 1's 1@5"
    assert s.put(1, 10, "1@10") == ["1@5"]
    assert s.get(timeout=0) == (1, "1@10")
    s.put(0, 8, "0@8")                                              # behind the last frame taken
    assert s.get(timeout=0) == (0, "0@8")


@pytest.mark.parametrize("ahead_s", [0.3, 0.0, -0.3])
def test_live_a_camera_flooding_frames_stamped_ahead_or_behind_takes_only_its_share(ahead_s):
    """A broken camera sends 150 frames/s, its stamps ahead of (or behind) the others'; three good
    cameras send 6 each; the worker takes one frame every 20 ms. Newer heads first must not let
    the camera that is always newest take every turn: each good frame is still served."""
    s = FrameScheduler(4, depth=1)
    events = sorted([(k / 18.0, k % 3, k / 18.0) for k in range(360)] +
                    [(k / 150.0, 3, k / 150.0 + ahead_s) for k in range(3000)])
    t, i, served = 0.0, 0, [0] * 4
    while i < len(events):
        while i < len(events) and events[i][0] <= t:
            s.put(events[i][1], int(events[i][2] * 1e9), None)
            i += 1
        if not len(s):
            t = events[i][0] if i < len(events) else t
            continue
        served[s.get(timeout=0)[0]] += 1
        t += 0.02
    assert served[:3] == [120, 120, 120], served


def test_live_keeps_each_cameras_arrival_order():
    s = FrameScheduler(2, depth=3)
    s.put(0, 10, "a")
    s.put(0, 5, "late")                # out of order within a camera: kept, in arrival order
    s.put(1, 11, "b")
    assert drain(s) == [(0, "a"), (1, "b"), (0, "late")]


def test_live_deeper_queue_and_bad_depth():
    s = FrameScheduler(2, depth=2)
    for k in range(4):
        s.put(0, k, k)
    assert drain(s) == [(0, 2), (0, 3)]
    with pytest.raises(ValueError):
        FrameScheduler(2, depth=0)


def test_offline_hands_frames_out_in_stamp_order_whatever_the_arrival_order():
    """DDS delivers different cameras' topics in any order; offline processing must not depend on it."""
    s = FrameScheduler(3, depth=None)
    stamps = list(range(100, 400, 10))                      # 30 frames, cameras 0, 1, 2 in turn
    order = [k ^ 1 for k in range(len(stamps))]             # swap neighbours: every pair arrives reversed
    order[10], order[14] = order[14], order[10]             # and one frame 4 places late
    got = []
    for k in order:
        assert s.put(k % 3, stamps[k], k) == []
        got += drain(s)
    assert s.held > 0                                       # the newest wait for the other cameras
    s.put(None, 0, "flush")                                 # a control releases everything before it
    got += drain(s)
    assert got[-1] == (None, "flush") and s.held == 0
    assert [k for _, k in got[:-1]] == list(range(len(stamps)))


def test_offline_holds_a_frame_until_every_camera_is_past_it_or_the_horizon():
    s = FrameScheduler(2, depth=None, horizon_ns=1000)
    s.put(0, 100, "a")
    assert drain(s) == [] and s.held == 1                   # camera 1 may still send an older frame
    s.put(0, 600, "b")
    assert drain(s) == []
    s.put(0, 1100, "c")                                     # camera 1 silent for the horizon: go on
    assert drain(s) == [(0, "a")]
    s.put(1, 1200, "d")
    assert drain(s) == [(0, "b"), (0, "c")]


def test_offline_restart_orders_the_looped_frames_after_the_old_ones():
    s = FrameScheduler(2, depth=None)
    s.put(0, 5000, "old0")
    s.restart()                                             # the stamps jumped back
    s.put(1, 100, "new1")
    s.put(0, 110, "new0")
    assert drain(s) == [(0, "old0"), (1, "new1")]


def test_get_blocks_until_put_and_close_wakes_it():
    s = FrameScheduler(1, depth=1)
    got = []
    t = threading.Thread(target=lambda: got.append(s.get(timeout=5)))
    t.start()
    time.sleep(0.05)
    s.put(0, 1, "x")
    t.join(2)
    assert got == [(0, "x")]
    t = threading.Thread(target=lambda: got.append(s.get(timeout=5)))
    t.start()
    s.close()
    t.join(2)
    assert not t.is_alive() and got[-1] is None
