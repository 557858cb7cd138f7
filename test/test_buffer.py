"""The interleaved buffer: windows, timings and every kind of bad timing, counted."""
import random

import pytest

from dense_warper_ros.buffer import BufferConfig, Frame, InterleavedBuffer

MS = 1_000_000


def interleaved(num_cams=4, n=16, dt=20 * MS, t0=1_000 * MS):
    """Camera c at t0 + k*dt with k = c mod num_cams: each camera at 1/num_cams of the rate."""
    return [Frame(camera=k % num_cams, stamp_ns=t0 + k * dt) for k in range(n)]


def run(buf, frames):
    out = []
    for f in frames:
        out += buf.push(f)
    return out + buf.flush()


def test_causal_one_window_per_frame_with_newest_past_frames():
    buf = InterleavedBuffer(BufferConfig(num_cameras=4, timing="causal", max_view_age_ns=100 * MS))
    wins = run(buf, interleaved())
    # the first 1 frame cannot make 2 views; every later frame gives a window at its own stamp
    assert [w.target_ns for w in wins] == [f.stamp_ns for f in interleaved()[1:]]
    w = wins[-1]                               # target frame k=15 (camera 3)
    assert [f.stamp_ns for f in w.frames] == [1000 * MS + k * 20 * MS for k in (12, 13, 14, 15)]
    assert all(f.stamp_ns <= w.target_ns for f in w.frames)
    assert buf.stats["too_few_views"] == 1 and buf.stats["windows"] == 15


def test_windowed_uses_nearest_frames_on_both_sides_and_waits_for_them():
    buf = InterleavedBuffer(BufferConfig(num_cameras=4, timing="windowed", max_view_age_ns=50 * MS))
    frames = interleaved()
    emitted_after = {}
    for i, f in enumerate(frames):
        for w in buf.push(f):
            emitted_after[w.target_ns] = i
    t8 = frames[8].stamp_ns                    # camera 0; neighbours 7 (cam 3), 9 (cam 1), 10 (cam 2)
    assert emitted_after[t8] == 11             # waited until every camera delivered past t8
    tail = buf.flush()
    assert len(emitted_after) + len(tail) == 16
    # the window for frame 8: nearest of each camera, two before (cams 2, 3: frames 6, 7) is not
    # nearest for cam 2 (frame 10 is 40 ms away, frame 6 is 40 ms away too: the earlier one wins)
    buf2 = InterleavedBuffer(BufferConfig(num_cameras=4, timing="windowed", max_view_age_ns=50 * MS))
    wins = {w.target_ns: w for w in run(buf2, frames)}
    got = [f.stamp_ns for f in wins[t8].frames]
    assert got == [t8, frames[9].stamp_ns, frames[6].stamp_ns, frames[7].stamp_ns]


def test_duplicates_late_frames_and_clock_jump_are_counted_not_raised():
    buf = InterleavedBuffer(BufferConfig(num_cameras=2, timing="causal", max_view_age_ns=100 * MS))
    fs = interleaved(2, 6)
    out = run(buf, fs[:4])
    assert buf.push(fs[3]) == [] and buf.stats["duplicates"] == 1
    assert buf.push(Frame(camera=0, stamp_ns=fs[2].stamp_ns - 5 * MS)) == []
    assert buf.stats["late"] == 1
    # looped bag: stamps start over -> reset, and the stream goes on
    out += run(buf, interleaved(2, 4, t0=5_000 * MS))
    looped = run(buf, interleaved(2, 4))
    assert buf.stats["resets"] == 1
    assert [w.target_ns for w in looped] == [f.stamp_ns for f in interleaved(2, 4)[1:]]
    assert len(out) == 6


def test_camera_that_stops_is_left_out_and_others_go_on():
    buf = InterleavedBuffer(BufferConfig(num_cameras=3, timing="causal", max_view_age_ns=70 * MS, min_views=2))
    frames = [f for f in interleaved(3, 30) if not (f.camera == 2 and f.stamp_ns > 1200 * MS)]
    wins = run(buf, frames)
    late = [w for w in wins if w.target_ns > 1300 * MS]
    assert late and all(w.frames[2] is None and w.num_views == 2 for w in late)
    assert buf.stats["stale_views"] > 0
    strict = InterleavedBuffer(BufferConfig(num_cameras=3, timing="causal", max_view_age_ns=70 * MS, min_views=3))
    assert all(w.target_ns <= 1300 * MS for w in run(strict, frames))
    assert strict.stats["too_few_views"] > 0


def test_offline_reorder_makes_output_independent_of_delivery_order():
    frames = interleaved(4, 40)
    ref = [(w.target_ns, tuple(f.stamp_ns if f else None for f in w.frames))
           for w in run(InterleavedBuffer(BufferConfig(num_cameras=4, reorder=True)), frames)]
    rng = random.Random(3)
    for timing in ("causal", "windowed"):
        base = None
        for _ in range(3):
            # topics are delivered in order per camera, interleaved arbitrarily across cameras
            # within 150 ms of transport skew
            queues = {c: [f for f in frames if f.camera == c] for c in range(4)}
            shuffled = []
            while any(queues.values()):
                first = min(q[0].stamp_ns for q in queues.values() if q)
                c = rng.choice([c for c in queues if queues[c] and queues[c][0].stamp_ns - first <= 150 * MS])
                shuffled.append(queues[c].pop(0))
            buf = InterleavedBuffer(BufferConfig(num_cameras=4, timing=timing, reorder=True))
            got = [(w.target_ns, tuple(f.stamp_ns if f else None for f in w.frames))
                   for w in run(buf, shuffled)]
            assert len(got) == (39 if timing == "causal" else 40)  # windowed: frame 0 has later views
            base = base or got
            assert got == base
        if timing == "causal":
            assert base == ref


@pytest.mark.parametrize("kw", [dict(num_cameras=0), dict(num_cameras=2, timing="sync"),
                                dict(num_cameras=2, min_views=0), dict(num_cameras=2, max_view_age_ns=0)])
def test_bad_config_names_the_value(kw):
    with pytest.raises(ValueError, match=str(list(kw.values())[-1]).strip("'")):
        BufferConfig(**kw)


def test_windows_carry_each_views_earlier_frames_for_temporal_context():
    t = lambda k: 1000 * MS + k * 20 * MS                 # noqa: E731  stamp of frame k
    buf = InterleavedBuffer(BufferConfig(num_cameras=4, timing="causal", max_view_age_ns=100 * MS, history=2))
    w = run(buf, interleaved())[-1]                   # target frame k=15; views are frames 12..15
    # camera c's frames are k = c, c+4, ...: before 12+c come 8+c (80 ms earlier) and 4+c (160 ms,
    # further than max_view_age: no use for a velocity)
    assert [[f.stamp_ns for f in prev] for prev in w.previous] == [[t(8 + c)] for c in range(4)]
    buf = InterleavedBuffer(BufferConfig(num_cameras=4, timing="causal", max_view_age_ns=200 * MS, history=2))
    w = run(buf, interleaved())[-1]
    assert [[f.stamp_ns for f in prev] for prev in w.previous] == [[t(8 + c), t(4 + c)] for c in range(4)]
    assert all(f.camera == c for c, prev in enumerate(w.previous) for f in prev)
    first = run(InterleavedBuffer(BufferConfig(num_cameras=4, history=1)), interleaved(n=3))[0]
    assert first.previous == ((),) * 4, "no earlier frames yet"
    assert run(InterleavedBuffer(BufferConfig(num_cameras=4)), interleaved())[-1].previous == ((),) * 4
    with pytest.raises(ValueError, match="history"):
        BufferConfig(num_cameras=4, history=8)


def test_windowed_later_pick_brackets_the_target_for_temporal_context():
    """windowed_pick='later': each other camera's first frame after the target (within the age
    limit), with its earlier frame before the target: a pair around the target, as (c) uses."""
    t = lambda k: 1000 * MS + k * 20 * MS                 # noqa: E731
    cfg = dict(num_cameras=4, timing="windowed", max_view_age_ns=90 * MS, history=1)
    later = InterleavedBuffer(BufferConfig(**cfg, windowed_pick="later"))
    w = {x.target_ns: x for x in run(later, interleaved())}[t(9)]
    assert [f.stamp_ns for f in w.frames] == [t(12), t(9), t(10), t(11)]       # camera 1 is the target
    assert [[f.stamp_ns for f in p] for p in w.previous] == [[t(8)], [t(5)], [t(6)], [t(7)]]
    near = {x.target_ns: x for x in run(InterleavedBuffer(BufferConfig(**cfg)), interleaved())}[t(9)]
    assert [f.stamp_ns for f in near.frames] == [t(8), t(9), t(10), t(7)]      # nearest (ties: earlier)
    with pytest.raises(ValueError, match="windowed_pick"):
        BufferConfig(num_cameras=4, windowed_pick="soonest")
