"""Stamps judged per camera: a camera with a wrong clock loses only its own frames; the rig
resets only when most cameras jump back together."""
import pytest

from dense_warper_ros.clock_check import ClockCheck, Verdict

MS = 1_000_000
S = 1_000_000_000


def rig(cams: int = 4) -> ClockCheck:
    return ClockCheck(cams, clock_jump_ns=1 * S, max_lead_ns=200 * MS)


def stream(check: ClockCheck, frames, *, offsets=None, arrival_offset=0):
    """frames: k -> camera k % N at 10 ms steps (100 Hz interleaved); offsets: camera -> stamp error."""
    offsets = offsets or {}
    n = len(check.cams)
    out = []
    for k in frames:
        c, t = k % n, 1 * S + k * 10 * MS
        out.append((c, check.judge(c, t + offsets.get(c, 0), t + arrival_offset)))
    return out


def test_good_cameras_are_all_accepted():
    check = rig()
    assert all(v is Verdict.ACCEPT for _, v in stream(check, range(200)))
    assert check.resets == 0


@pytest.mark.parametrize("offset,cause", [(86400 * S, Verdict.AHEAD), (-10 * S, Verdict.BEHIND),
                                          (900 * MS, Verdict.AHEAD)])
def test_one_camera_off_loses_only_its_own_frames(offset, cause):
    check = rig()
    out = stream(check, range(400), offsets={3: offset})
    assert {v for c, v in out if c != 3} == {Verdict.ACCEPT}          # the other cameras lose nothing
    bad = [v for c, v in out if c == 3]
    assert bad.count(cause) >= len(bad) - 1, bad                      # its first frame may set the clock
    assert check.resets == 0
    if cause is Verdict.AHEAD:
        assert check.offset_s(3) == pytest.approx(offset / S, abs=0.05)


def test_a_single_frame_ahead_under_clock_jump_is_dropped_and_blocks_nothing():
    check = rig()
    stream(check, range(40))
    assert check.judge(2, 1 * S + 40 * 10 * MS + 900 * MS, 1 * S + 40 * 10 * MS) is Verdict.AHEAD
    out = stream(check, range(41, 80))
    assert {v for _, v in out} == {Verdict.ACCEPT}


def test_a_looped_bag_resets_once_when_most_cameras_have_jumped():
    check = rig()
    stream(check, range(300))
    out = stream(check, range(100), arrival_offset=3 * S)             # from the start again, at once
    verdicts = [v for _, v in out]
    assert verdicts[:2] == [Verdict.BEHIND, Verdict.BEHIND]           # 2 of 4: could be two bad clocks
    assert verdicts[2] is Verdict.RESET and check.resets == 1         # 3 of 4: the rig jumped
    assert set(verdicts[3:]) == {Verdict.ACCEPT}


def test_two_cameras_the_one_that_keeps_time_keeps_working():
    check = rig(2)
    out = stream(check, range(100), offsets={1: -30 * S})
    assert {v for c, v in out if c == 0} == {Verdict.ACCEPT}
    assert {v for c, v in out[2:] if c == 1} == {Verdict.BEHIND}


def test_a_pause_of_the_whole_rig_is_not_a_clock_error():
    """Every camera silent for 0.5 s, then on again: the stamps moved with the arrival times."""
    check = rig()
    stream(check, range(40))
    out = stream(check, range(90, 140))
    assert {v for _, v in out} == {Verdict.ACCEPT}


def test_a_camera_that_stopped_does_not_vote():
    """Cameras 0 and 1 stop; 2 and 3 then loop: they are the whole active rig, so it resets."""
    check = rig()
    stream(check, range(300))
    later = 10 * S
    verdicts = [check.judge(c, 1 * S + k * 10 * MS, later + k * 10 * MS) for k in range(4) for c in (2, 3)]
    assert Verdict.RESET in verdicts and check.resets == 1
    assert verdicts[-1] is Verdict.ACCEPT


def test_bad_limits_are_refused():
    with pytest.raises(ValueError, match="max_lead_ns"):
        ClockCheck(2, clock_jump_ns=S, max_lead_ns=0)
