"""The accuracy benchmark's scores, tables and figures.

Errors (`eval.metrics`, in mm): MPJPE abs, the mean Euclidean joint error in the world frame;
MPJPE root-aligned, the same after the estimate is translated so its pelvis matches the truth's;
PA-MPJPE, after the similarity transform that best aligns the estimate to the truth. Coverage: the
fraction of joints with a finite estimate (means are over finite estimates only).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from dense_warper_ros.eval.bench_config import METHOD_NAMES
from dense_warper_ros.eval.methods import MethodOutput, SequenceResult
from dense_warper_ros.eval.metrics import coverage, joint_errors
from dense_warper_ros.skeleton import H36M_BONES, H36M_JOINTS


def score(results: Sequence[SequenceResult]) -> dict[str, dict]:
    """Per method: pooled metrics (mm), per clip, per joint (root-aligned), rates, delays."""
    keys = list(results[0].outputs) if results else []
    out = {}
    for key in keys:
        errs = {a: [] for a in ("none", "root", "procrustes")}
        per_clip, delays, preds = {}, [], []
        for r in results:
            o = r.outputs[key]
            e = {a: joint_errors(o.pred, r.gt, a) * 1000.0 for a in errs}
            for a in errs:
                errs[a].append(e[a])
            per_clip[r.name] = {"mpjpe_root_mm": _mean(e["root"]), "mpjpe_abs_mm": _mean(e["none"]),
                                "pa_mpjpe_mm": _mean(e["procrustes"]), "coverage": coverage(o.pred),
                                "poses": int(len(r.targets))}
            if r.heldout_px.get(key) is not None:
                per_clip[r.name]["heldout_reproj_px"] = _mean(r.heldout_px[key])
            delays.append(o.delay)
            preds.append(o.pred)
        cat = {a: np.concatenate(v) for a, v in errs.items()}
        d = np.concatenate(delays) * 1000.0
        total_time = sum(float(np.ptp(r.targets)) + _frame(r) for r in results)
        n_poses = sum(int(np.isfinite(r.outputs[key].pred).all(-1).any(-1).sum()) for r in results)
        images = sum(r.outputs[key].images_per_s * (float(np.ptp(r.targets)) + _frame(r)) for r in results)
        held = [r.heldout_px[key] for r in results if r.heldout_px.get(key) is not None]
        out[key] = {
            "method": key.split("/")[0], "timing": _timing(key), "name": METHOD_NAMES[key.split("/")[0]],
            "mpjpe_root_mm": _mean(cat["root"]), "mpjpe_abs_mm": _mean(cat["none"]),
            "pa_mpjpe_mm": _mean(cat["procrustes"]),
            "coverage": coverage(np.concatenate(preds)),
            "per_joint_root_mm": {j: _mean(cat["root"][:, i]) for i, j in enumerate(H36M_JOINTS)},
            "per_clip": per_clip,
            "delay_ms_mean": float(d.mean()) if d.size else float("nan"),
            "delay_ms_max": float(d.max()) if d.size else float("nan"),
            "poses_per_s": n_poses / total_time if total_time else float("nan"),
            "images_per_s": images / total_time if total_time else float("nan"),
            "heldout_reproj_px": _mean(np.concatenate(held)) if held else None,
        }
    return out


def _frame(r: SequenceResult) -> float:
    return float(np.median(np.diff(r.targets))) if len(r.targets) > 1 else 0.0


def _timing(key: str) -> str:
    m, _, t = key.partition("/")
    return {"a": "windowed (interpolates)", "e": "synchronous"}.get(m, t)


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def markdown_table(scores: Mapping[str, dict], *, truth: str = "GT") -> str:
    """One row per method and timing; `truth` names what the errors are measured against."""
    heads = ["Method", "Timing", "Images/s", "Poses/s", "Delay ms (mean/max)",
             f"MPJPE root-aligned mm (vs {truth})", "MPJPE abs mm", "PA-MPJPE mm", "Coverage %"]
    with_held = any(s.get("heldout_reproj_px") is not None for s in scores.values())
    if with_held:
        heads.append("Held-out reproj. px")
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for s in scores.values():
        row = [s["name"], s["timing"], f"{s['images_per_s']:.0f}", f"{s['poses_per_s']:.0f}",
               f"{s['delay_ms_mean']:.1f} / {s['delay_ms_max']:.1f}", f"{s['mpjpe_root_mm']:.1f}",
               f"{s['mpjpe_abs_mm']:.1f}", f"{s['pa_mpjpe_mm']:.1f}", f"{100 * s['coverage']:.1f}"]
        if with_held:
            h = s.get("heldout_reproj_px")
            row.append("n/a (all views used)" if h is None else f"{h:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_clip_table(scores: Mapping[str, dict]) -> str:
    keys = list(scores)
    clips = list(next(iter(scores.values()))["per_clip"]) if scores else []
    heads = ["Clip (MPJPE root-aligned mm)"] + keys
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for c in clips:
        lines.append("| " + " | ".join([c] + [f"{scores[k]['per_clip'][c]['mpjpe_root_mm']:.1f}"
                                              for k in keys]) + " |")
    return "\n".join(lines)


SKELETON_PANELS = ("a", "b/causal", "c/causal", "d/causal", "d+/causal", "d/windowed", "d+/windowed", "e")


def skeleton_panels(outputs: Mapping[str, MethodOutput]) -> list[str]:
    """The methods the figure draws as skeletons, in `SKELETON_PANELS` order: every one that ran,
    (d+) included (the shipped method)."""
    return [k for k in SKELETON_PANELS if k in outputs]


def plot(results: Sequence[SequenceResult], path: Path, title: str) -> None:
    """Error per method over time (clips side by side) and one frame of skeletons."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 10), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    ax = top.add_subplot(1, 1, 1)
    _plot_errors(ax, results, plt.rcParams["axes.prop_cycle"].by_key()["color"])
    ax.set_title(title, fontsize=10)
    _plot_skeletons(bottom, results[0])
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_errors(ax, results: Sequence[SequenceResult], colours: list[str]) -> None:
    """Per-pose root-aligned MPJPE of every method over time, the sequences one after another."""
    keys = list(results[0].outputs)
    offset, starts, lowest = 0.0, [], np.inf
    for r in results:
        t = r.targets - r.targets[0] + offset
        for i, key in enumerate(keys):
            if r.pseudo_gt and key == "e":
                continue                                   # (e) is the pseudo ground truth: 0
            e = np.nanmean(joint_errors(r.outputs[key].pred, r.gt, "root"), axis=1) * 1000.0
            lowest = min(lowest, float(np.nanmin(np.where(e > 1e-6, e, np.inf))))
            ax.plot(t, e, color=colours[i % len(colours)], lw=1, ls="--" if key.endswith("causal") else "-",
                    label=key if r is results[0] else None)
        starts.append((offset, r.name))
        offset = t[-1] + 0.1
    for x, name in starts:
        ax.axvline(x, color="0.6", lw=0.6)
        ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=9)
    ax.set_xlabel("time (s), sequences one after another")
    ax.set_ylabel("MPJPE root-aligned (mm), per pose")
    ax.set_yscale("log")
    if np.isfinite(lowest):                               # exact zeros (pseudo-GT frames) drop out
        ax.set_ylim(bottom=0.7 * lowest)
    ax.legend(ncol=len(keys), fontsize=8, loc="lower center")


def _plot_skeletons(panel, r: SequenceResult) -> None:
    """Every `skeleton_panels` method's pose over the truth, at the instant where naive causal
    interleaving errs most in `r`."""
    ref = "b/causal" if "b/causal" in r.outputs else list(r.outputs)[0]
    err = np.nanmean(joint_errors(r.outputs[ref].pred, r.gt, "root"), axis=1)
    f = int(np.nanargmax(err)) if np.isfinite(err).any() else 0
    show = skeleton_panels(r.outputs)
    for i, key in enumerate(show):
        a3 = panel.add_subplot(1, len(show), i + 1, projection="3d")
        for pose, colour, lw in ((r.gt[f], "k", 2.0), (r.outputs[key].pred[f], "tab:red", 1.2)):
            for c, p in H36M_BONES:
                a3.plot(*zip(pose[c], pose[p]), color=colour, lw=lw)
        centre = r.gt[f].mean(0)
        for setlim, k in ((a3.set_xlim, 0), (a3.set_ylim, 1), (a3.set_zlim, 2)):
            setlim(centre[k] - 0.9, centre[k] + 0.9)
        a3.set_box_aspect((1, 1, 1))
        e = np.nanmean(joint_errors(r.outputs[key].pred[f], r.gt[f], "root")) * 1000
        a3.set_title(f"{key}: {e:.0f} mm", fontsize=9)
        a3.tick_params(labelsize=6)
    panel.suptitle(f"{r.name}, t = {r.targets[f]:.3f} s: black {r.truth}, red estimate "
                   f"(the instant where {ref} errs most)", fontsize=10)


def video_title(res: SequenceResult, model: str, model_tc: str) -> str:
    """The real video's table and figure title: its rig and rate as the recording has them."""
    each = res.rate_hz / res.num_cameras if res.num_cameras else float("nan")
    return (f"{res.name} video ({len(res.targets)} scored frames, {res.num_cameras} cameras, {res.rate_hz:.0f} "
            f"frames/s interleaved, {each:.0f} each) vs {res.truth}; (d) = {model}; (d+) = {model_tc}")


def label_model(scores: dict[str, dict], status: str, status_tc: str | None = None) -> dict[str, dict]:
    """Say in (d)'s and (d+)'s rows which weights ran (trained file or untrained identity warps)."""
    for key, s in scores.items():
        if key.startswith("d/"):
            s["name"] = f"{s['name']} [{status}]"
        elif key.startswith("d+/") and status_tc:
            s["name"] = f"{s['name']} [{status_tc}]"
    return scores


def jsonable(x: Any) -> Any:
    """Plain JSON data from configs (dataclasses), dicts, sequences and numpy scalars; non-finite
    floats become null."""
    if dataclasses.is_dataclass(x):
        return {k: jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return jsonable(x.item())
    return x
