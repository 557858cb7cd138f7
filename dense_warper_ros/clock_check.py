"""Per-camera stamp checks: whose clock disagrees with the rig, and when the whole rig jumped.

The method puts every view at its capture stamp, so one camera with a wrong clock must not move
everyone's output. Each frame is judged on arrival against the rig:

- ahead: its stamp lies more than `max_lead` past every other camera's newest stamp and past where
  the rig's clock should be by now (the newest accepted stamp plus the arrival time elapsed since).
  Accepted, such a frame would make every other camera's frames look late and blank the output.
- behind: its stamp lies more than `clock_jump` before the newest accepted stamp.

Either way the frame is dropped and counted under its camera, unless a strict majority of the
active cameras (those that delivered within `clock_jump` of arrival time) agrees with the new
stamp: then the rig itself moved. Behind is then a looped bag or a clock reset (the buffer and the
TF history start over, once); ahead is a skip forward (accepted as is). On a tie the rig's current
clock wins, so on a two-camera rig the camera that keeps time keeps working.

Stamps and arrival times are integer nanoseconds; arrival times only need one steady clock of
their own (the node's monotonic clock, or a bag's log times).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    ACCEPT = "accept"          # on the rig's clock
    RESET = "reset"            # the majority jumped back: start over, then accept
    AHEAD = "clock_ahead"      # this camera's clock is ahead of the rig's: drop
    BEHIND = "clock_behind"    # this camera's clock is behind the rig's: drop


@dataclass
class _CameraClock:
    newest_ns: int | None = None        # stamp of the camera's latest frame (accepted or not)
    arrival_ns: int | None = None       # its arrival time
    offset_ns: int = 0                  # last judged disagreement with the rig (+ ahead, - behind)


class ClockCheck:
    """Judges each frame's stamp against the other cameras; not thread-safe (call from one thread)."""

    def __init__(self, num_cameras: int, *, clock_jump_ns: int, max_lead_ns: int):
        if clock_jump_ns <= 0 or max_lead_ns <= 0:
            raise ValueError(f"clock_jump_ns and max_lead_ns must be > 0, got {clock_jump_ns}, {max_lead_ns}")
        self.clock_jump_ns = clock_jump_ns
        self.max_lead_ns = max_lead_ns
        self.cams = [_CameraClock() for _ in range(num_cameras)]
        self.rig_ns: int | None = None            # newest accepted stamp
        self._rig_arrival_ns: int | None = None   # arrival time of that frame
        self.resets = 0

    def offset_s(self, camera: int) -> float:
        """How far the camera's last judged frame was from the rig's clock (s, + ahead)."""
        return self.cams[camera].offset_ns * 1e-9

    def judge(self, camera: int, stamp_ns: int, arrival_ns: int | None = None) -> Verdict:
        """One frame's verdict. `arrival_ns` None: no arrival clock (the elapsed-time allowance is 0)."""
        me = self.cams[camera]
        verdict = self._verdict(camera, stamp_ns, arrival_ns)
        me.newest_ns, me.arrival_ns = stamp_ns, arrival_ns     # the camera's own clock, right or wrong
        if verdict is Verdict.RESET:
            self.resets += 1
            self.rig_ns = None
            for c in self.cams:                  # the old clock's stamps no longer count
                if c is not me and c.newest_ns is not None and c.newest_ns > stamp_ns + self.clock_jump_ns:
                    c.newest_ns = None
        if verdict in (Verdict.ACCEPT, Verdict.RESET):
            me.offset_ns = 0
            if self.rig_ns is None or stamp_ns >= self.rig_ns:
                self.rig_ns, self._rig_arrival_ns = stamp_ns, arrival_ns
        return verdict

    def _verdict(self, camera: int, s: int, arrival: int | None) -> Verdict:
        if self.rig_ns is None:
            return Verdict.ACCEPT
        me = self.cams[camera]
        active = [c for k, c in enumerate(self.cams)
                  if k != camera and c.newest_ns is not None and self._active(c, arrival)]
        others = [c.newest_ns for c in active]
        on_time = [c.newest_ns for c in active if c.offset_ns == 0]   # cameras on the rig's clock
        elapsed = 0
        if arrival is not None and self._rig_arrival_ns is not None:
            elapsed = max(0, arrival - self._rig_arrival_ns)
        lead = s - max([self.rig_ns + elapsed, *on_time])
        lag = self.rig_ns - s
        if lead > self.max_lead_ns:
            me.offset_ns = lead
            return Verdict.ACCEPT if self._majority_agrees(s, others, self.max_lead_ns) else Verdict.AHEAD
        if lag > self.clock_jump_ns:
            me.offset_ns = -lag
            return Verdict.RESET if self._majority_agrees(s, others, self.clock_jump_ns) else Verdict.BEHIND
        return Verdict.ACCEPT

    def _active(self, c: _CameraClock, arrival: int | None) -> bool:
        """A camera votes while it delivers: within `clock_jump` of arrival time (always, without one)."""
        return arrival is None or c.arrival_ns is None or arrival - c.arrival_ns <= self.clock_jump_ns

    @staticmethod
    def _majority_agrees(s: int, others: list[int], tolerance_ns: int) -> bool:
        agree = 1 + sum(abs(o - s) <= tolerance_ns for o in others)
        return 2 * agree > 1 + len(others)
