"""The clock-offset estimator's pairwise view for reports: each camera pair's shift from all people
and from each person alone, and the loops of three cameras. Why: an estimate on its own cannot say
that something other than timing moves it; people of one pair, or pairs around a loop, that disagree
beyond their standard errors can."""
from __future__ import annotations

from dense_warper_ros.clock_offsets import PairShift, loop_mismatches


def clock_pairs_report(pairs: list[PairShift], cams: list[str]) -> dict:
    """Shifts and loop mismatches in ms, camera names for indices, loops worst first."""
    def ms(d: float, s: float) -> dict:
        return {"shift": 1000 * d, "sigma": 1000 * s}
    return {"pairs": [{"cameras": [cams[p.a], cams[p.b]], **ms(p.shift_s, p.sigma_s),
                       "by_track": {str(k): ms(*v) for k, v in p.by_track.items()}} for p in pairs],
            "loops": [{"cameras": [cams[a], cams[b], cams[c]], "mismatch": 1000 * m, "sigma": 1000 * s}
                      for a, b, c, m, s in loop_mismatches(pairs)]}


def clock_pairs_markdown(c: dict) -> str:
    """`clock_pairs_report` as a markdown table and a line on the worst loop."""
    def v(x: dict) -> str:
        return f"{x['shift']:+.1f} +- {x['sigma']:.1f}"
    lines = ["| camera pair | shift o_b - o_a (ms), all people | each person alone (track: ms) |", "|---|---|---|"]
    lines += [f"| {p['cameras'][0]}-{p['cameras'][1]} | {v(p)} | "
              + (", ".join(f"{k}: {v(x)}" for k, x in p["by_track"].items()) or "-") + " |" for p in c["pairs"]]
    if c["loops"]:
        w = c["loops"][0]
        lines += ["", f"Loops of three cameras (exact offsets close them): the worst, {' -> '.join(w['cameras'])}, "
                  f"misses by {w['mismatch']:+.1f} ms (+- {w['sigma']:.1f})"]
    return "\n".join(lines)
