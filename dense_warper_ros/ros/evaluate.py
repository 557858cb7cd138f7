"""Replay evaluation of a rosbag2 recording: `ros2 run dense_warper_ros evaluate BAG` or
`python -m dense_warper_ros.ros.evaluate BAG`.

Reads the bag, runs every camera frame through the node's per-frame path in offline mode (stamp
order, deterministic, the bag's stamps as the clock), writes an output bag (skeletons + markers +
the bag's /tf_static, for `ros2 bag play` and RViz) and a report: MPJPE / PA-MPJPE against the
ground-truth topic (exact, or a pseudo ground truth such as `dense_pipeline_truth`: the report
names it from the bag's metadata), output rate vs camera rates, latency, drops; JSON plus a
markdown summary, and pictures.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from dense_warper_ros.backbones.onnx_runtime import INFERENCE_CHOICES
from dense_warper_ros.colors import track_color_u8
from dense_warper_ros.eval import metrics, pictures
from dense_warper_ros.eval.clock_report import clock_pairs_markdown, clock_pairs_report
from dense_warper_ros.eval.people_report import by_instant, people_report, tracked_share
from dense_warper_ros.pipeline import PeopleOptions, build_pipeline
from dense_warper_ros.ros.bags import BagWriter, notes_of, read_messages, topics_of
from dense_warper_ros.ros.conversions import markers_for, ns_to_stamp, skeletons_to_msg
from dense_warper_ros.ros.frame_processor import image_to_rgb, stamp_to_ns
from dense_warper_ros.ros.offline_replay import OfflineReplay, camera_name_of, match_ground_truth
from dense_warper_ros.ros.recording_msgs import GROUND_TRUTH_NOTE, GROUND_TRUTH_TOPIC
from dense_warper_ros.weights import DEFAULT_MODEL


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bag", type=Path)
    ap.add_argument("--out", type=Path, default=Path("out/eval"))
    ap.add_argument("--timing", choices=("causal", "windowed"), default="windowed")
    ap.add_argument("--model-config", default=DEFAULT_MODEL)
    ap.add_argument("--weights", default="")
    ap.add_argument("--backbone", default="movenet_lightning")
    ap.add_argument("--inference", choices=INFERENCE_CHOICES, default="auto",
                    help="what runs the 2D network (the node's `inference`)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--world-frame", default="world")
    ap.add_argument("--gt-topic", default=GROUND_TRUTH_TOPIC)
    ap.add_argument("--max-view-age", type=float, default=0.2)
    ap.add_argument("--outlier-threshold", type=float, default=None,
                    help="heatmap px: drop a camera's joint this far from the others' triangulation (the "
                         "node's outlier_threshold; default off)")
    ap.add_argument("--max-fused-views", type=int, default=5,
                    help="views fused per pose, nearest in time to it (the node's max_fused_views; 0: all)")
    ap.add_argument("--compare-untrained", action="store_true",
                    help="also replay with untrained identity warps (faithful lite config = naive interleaving) "
                         "and plot both")
    ap.add_argument("--max-people", type=int, default=1,
                    help="people tracked at once (1: the single-person pipeline; more: detector, association, "
                         "tracks, and a per-person report)")
    ap.add_argument("--detector-period", type=int, default=5,
                    help="--max-people > 1: frames of a camera between person-detector runs")
    ap.add_argument("--expect-people", type=int, default=0,
                    help="people in the scene, for the report's share of instants with all of them tracked")
    ap.add_argument("--estimate-clock-offsets", action="store_true",
                    help="estimate each camera's clock offset from the tracked people (reported, not applied)")
    ap.add_argument("--apply-clock-offsets", action="store_true",
                    help="estimate them and correct the stamps (the node's estimate_clock_offsets)")
    ap.add_argument("--stamp-offset", action="append", default=[], metavar="CAMERA=SECONDS",
                    help="add SECONDS to every stamp of CAMERA's images and CameraInfo (a camera whose clock "
                         "is off, to check the estimate); repeatable")
    ap.add_argument("--no-pictures", action="store_true")
    return ap.parse_args(argv)


def cameras_in(bag: Path) -> list[str]:
    names = sorted({p[0] for t in topics_of(bag) if (p := camera_name_of(t)) and p[1] == "image"})
    if len(names) < 2:
        raise SystemExit(f"{bag}: found cameras {names}; need at least 2 '<cam>/image_raw' topics")
    return names


def replay(bag: Path, cams: list[str], args, *, weights: str, keep_images: bool, model_config: str | None = None):
    pipe = build_pipeline(num_cameras=len(cams), timing=args.timing, offline=True,
                          model_config=model_config or args.model_config, weights=weights, backbone=args.backbone,
                          inference=args.inference, device=args.device, max_view_age_s=args.max_view_age,
                          outlier_threshold=args.outlier_threshold, max_views=args.max_fused_views,
                          people=PeopleOptions(max_people=args.max_people, detector_period=args.detector_period,
                                               clock_offsets=args.estimate_clock_offsets,
                                               apply_clock_offsets=args.apply_clock_offsets))
    rep = OfflineReplay(pipeline=pipe, cameras=cams, world_frame=args.world_frame)
    offsets = stamp_offsets(args.stamp_offset, cams)
    truth: dict[int, np.ndarray] = {}
    thumbs: dict[int, list[tuple[int, np.ndarray]]] = defaultdict(list)   # camera -> (stamp, small RGB)
    tf_static = []
    t0 = time.perf_counter()
    for topic, msg, log_ns in read_messages(bag):
        if topic == args.gt_topic:
            for sk in msg.skeletons[:1]:
                truth[stamp_to_ns(msg.header.stamp)] = np.array([[p.x, p.y, p.z] for p in sk.positions])
            continue
        if topic == "/tf_static":
            tf_static.append(msg)
        shift_stamp(msg, topic, offsets)
        rep.feed(topic, msg, arrival_ns=log_ns)
        parsed = camera_name_of(topic)
        if keep_images and parsed and parsed[1] == "image" and parsed[0] in cams:
            i = cams.index(parsed[0])
            rgb = image_to_rgb(msg)
            scale = 480.0 / max(rgb.shape[:2])
            thumbs[i].append((stamp_to_ns(msg.header.stamp), cv2_resize(rgb, scale)))
    res = rep.finish()
    wall = time.perf_counter() - t0
    cameras = {i: c for i, c in enumerate(rep.processor.last_camera) if c is not None}
    return res, truth, thumbs, cameras, tf_static, wall, pipe


def stamp_offsets(specs: list[str], cams: list[str]) -> dict[str, int]:
    """['cam02=0.015', ...] -> {camera: ns}."""
    out = {}
    for spec in specs:
        name, _, value = spec.partition("=")
        if name not in cams:
            raise SystemExit(f"--stamp-offset {spec!r}: camera {name!r} is not one of {cams}")
        out[name] = int(round(float(value) * 1e9))
    return out


def shift_stamp(msg, topic: str, offsets: dict[str, int]) -> None:
    """Move a camera's message stamp by its offset (images and CameraInfo)."""
    parsed = camera_name_of(topic)
    if parsed and parsed[0] in offsets:
        msg.header.stamp = ns_to_stamp(stamp_to_ns(msg.header.stamp) + offsets[parsed[0]])


def cv2_resize(rgb: np.ndarray, scale: float) -> np.ndarray:
    return cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def score(res, truth) -> dict:
    if not truth:
        return {}
    stamps, pred, gt = match_ground_truth(res.poses, truth)
    if not len(stamps):
        return {"matched": 0}
    err = metrics.joint_errors(pred, gt, "root") * 1000
    return {"matched": int(len(stamps)), "mpjpe_root_mm": metrics.mpjpe_root_aligned(pred, gt) * 1000,
            "mpjpe_abs_mm": metrics.mpjpe(pred, gt) * 1000, "pa_mpjpe_mm": metrics.pa_mpjpe(pred, gt) * 1000,
            "coverage": metrics.coverage(pred), "_per_pose": (stamps, np.nanmean(err, axis=1))}


def main(argv=None) -> int:
    args = parse_args(argv)
    bag, out = args.bag, args.out
    out.mkdir(parents=True, exist_ok=True)
    cams = cameras_in(bag)
    print(f"replaying {bag} ({len(cams)} cameras: {cams}), timing={args.timing}", flush=True)
    res, truth, thumbs, cameras, tf_static, wall, pipe = replay(bag, cams, args, weights=args.weights,
                                                                keep_images=not args.no_pictures)
    weights = pipe.weights_source
    info = topics_of(bag)
    frames_per_cam = {c: sum(n for t, (_, n) in info.items()
                             if (p := camera_name_of(t)) and p == (c, "image")) for c in cams}
    dur = (max(p.stamp_ns for p in res.poses) - min(p.stamp_ns for p in res.poses)) * 1e-9 if len(res.poses) > 1 else 0
    total_frames = sum(frames_per_cam.values())
    sc = score(res, truth)
    ft = np.array(res.frame_times_s) * 1000 if res.frame_times_s else np.zeros(1)
    report = {
        "bag": str(bag), "cameras": cams, "timing": args.timing, "model_config": args.model_config,
        "weights": weights, "backbone": args.backbone,
        "inference": pipe.backbone.inference if pipe.backbone else "none", "device": str(pipe.device),
        "frames_in": res.frames_in, "poses_out": len(res.poses),
        "poses_per_input_frame": len(res.poses) / max(res.frames_in, 1),
        "output_rate_hz": (len(res.poses) - 1) / dur if dur > 0 else 0.0,
        "camera_frames": frames_per_cam,
        "sum_camera_rate_hz": (total_frames - 1) / dur if dur > 0 else 0.0,
        "drops": dict(res.drops), "buffer": dict(pipe.buffer.stats), "clock_jumps": res.clock_jumps,
        "frame_time_ms": {"p50": float(np.percentile(ft, 50)), "p95": float(np.percentile(ft, 95)),
                          "p99": float(np.percentile(ft, 99))},
        "wall_s": wall, "ground_truth_topic": args.gt_topic if truth else None,
        "ground_truth": notes_of(bag).get(GROUND_TRUTH_NOTE, "not named in the bag") if truth else None,
        "accuracy": {k: v for k, v in sc.items() if not k.startswith("_")},
    }
    clock = getattr(pipe, "clock", None)
    if clock is not None:
        report["clock_pairs_ms"] = clock_pairs_report(clock.pair_shifts(), cams)   # fits every pair afresh
        report["clock_offsets_ms"] = {cams[c]: {"offset": 1000 * e.offset_s, "sigma": 1000 * e.sigma_s,
                                                "pairs": e.pairs, "seen_s": e.seen_s, "known": e.known}
                                      for c, e in clock.estimate_cached().items()}
        report["stamp_offsets_added_ms"] = {k: v * 1e-6 for k, v in stamp_offsets(args.stamp_offset, cams).items()}
        report["clock_offsets_applied"] = bool(args.apply_clock_offsets)
    if args.max_people > 1 and res.poses:
        cycle_ns = int(len(cams) / report["sum_camera_rate_hz"] * 1e9) if report["sum_camera_rate_hz"] else 0
        report["people"] = people_report(res.poses, scored_from_ns=min(p.stamp_ns for p in res.poses) + cycle_ns)
        report["people"]["tracker"] = pipe.people_counts()
        if args.expect_people:
            report["people"]["expected"] = args.expect_people
            report["people"]["all_tracked_share"] = tracked_share(report["people"], args.expect_people)
    series = {}
    if "_per_pose" in sc:
        t0 = sc["_per_pose"][0][0]
        series["DenseWarper"] = ((sc["_per_pose"][0] - t0) * 1e-9, sc["_per_pose"][1])
    if args.compare_untrained and truth:
        # the faithful config untrained: identity warps, i.e. naive interleaving (an untrained
        # temporal-context config would extrapolate at constant velocity instead)
        res_u, *_ = replay(bag, cams, args, weights="none", keep_images=False, model_config="lite")
        su = score(res_u, truth)
        report["accuracy_untrained"] = {k: v for k, v in su.items() if not k.startswith("_")}
        if "_per_pose" in su and series:
            series["untrained warps (identity)"] = ((su["_per_pose"][0] - t0) * 1e-9, su["_per_pose"][1])

    # output bag: skeletons + markers at their stamps, and the camera frames for RViz
    out_bag = out / "output_bag"
    if out_bag.exists():
        import shutil
        shutil.rmtree(out_bag)
    with BagWriter(out_bag) as w:
        first = res.poses[0].stamp_ns if res.poses else 0
        for m in tf_static:
            w.write("/tf_static", m, first)
        for stamp, group in by_instant(res.poses).items():
            frame = args.world_frame
            w.write("/dense_warper/skeletons", skeletons_to_msg(group, frame_id=frame, stamp_ns=stamp), stamp)
            w.write("/dense_warper/markers", markers_for(group, frame_id=frame, stamp_ns=stamp), stamp)
    report["output_bag"] = str(out_bag)

    if not args.no_pictures and res.poses and thumbs:
        report["pictures"] = make_pictures(res, thumbs, cameras, out, series, per_track=args.max_people > 1)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float))
    md = summary_markdown(report)
    (out / "summary.md").write_text(md)
    print(md)
    return 0


def _draw(img: np.ndarray, cam, poses: list, per_track: bool) -> np.ndarray:
    """Every pose of an instant on one camera's thumbnail: each track in its own colour
    (`per_track`), else the orange/blue right/left colouring."""
    if cam is None:
        return img
    for p in poses:
        colour = {"color": track_color_u8(p.track_id), "left_color": None} if per_track else {}
        img = pictures.draw_skeleton(img, cam, p.points, scale=img.shape[1] / cam.width, **colour)
    return img


def make_pictures(res, thumbs, cameras, out: Path, series, *, per_track: bool = False) -> dict:
    poses = by_instant(res.poses)
    keys = np.array(list(poses))
    rows, labels, video = [], [], []
    V = len(thumbs)
    pick = np.linspace(0, len(keys) - 1, min(4, len(keys))).round().astype(int)
    for k in pick:
        t = int(keys[k])
        rows.append([_draw(min(thumbs[c], key=lambda x: abs(x[0] - t))[1], cameras.get(c), poses[t], per_track)
                     for c in range(V)])
        labels.append(f"t = {(t - keys[0]) * 1e-9:.3f} s, ids {[p.track_id for p in poses[t]]}")
    sheet = pictures.contact_sheet(rows, out / "contact_sheet.png", labels=labels)
    # video: every output instant drawn on the newest frame of each camera, 2x2 (or 1xV) grid
    for t in keys:
        tiles = [_draw(([x for x in thumbs[c] if x[0] <= t] or thumbs[c][:1])[-1][1], cameras.get(c), poses[int(t)],
                       per_track) for c in range(V)]
        cols = 2 if V == 4 else V
        grid_rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, V, cols)]
        if len({r.shape[1] for r in grid_rows}) > 1:
            grid_rows = [np.concatenate(tiles, axis=1)]
        video.append(np.concatenate(grid_rows, axis=0))
    rate = (len(keys) - 1) / ((keys[-1] - keys[0]) * 1e-9) if len(keys) > 1 else 10.0
    mp4 = pictures.write_video(video, out / "skeletons.mp4", fps=min(rate, 60.0))
    longest = max({p.track_id for p in res.poses}, key=lambda i: sum(p.track_id == i for p in res.poses))
    track = [p.points for p in res.poses if p.track_id == longest]
    p3d = pictures.plot_3d(np.stack(track), out / "skeleton_3d.png",
                           title=f"person {longest} over time (colour = time)" if len(poses) < len(res.poses) else "")
    files = {"contact_sheet": str(sheet), "video": str(mp4), "skeleton_3d": str(p3d)}
    if series:
        files["error_over_time"] = str(pictures.plot_errors(series, out / "error_over_time.png"))
    return files


def summary_markdown(r: dict) -> str:
    lines = [f"## Replay of `{r['bag']}`", "",
             f"{len(r['cameras'])} cameras, timing **{r['timing']}**, model `{r['model_config']}` "
             f"({r['weights']}), backbone `{r['backbone']}` ({r.get('inference', 'auto')}) on {r['device']}", "",
             "| figure | value |", "|---|---|",
             f"| input frames | {r['frames_in']} |",
             f"| poses out | {r['poses_out']} ({r['poses_per_input_frame']:.2f} per frame) |",
             f"| output rate | {r['output_rate_hz']:.1f} Hz (sum of camera rates {r['sum_camera_rate_hz']:.1f} Hz) |",
             f"| per-frame time p50 / p95 / p99 | {r['frame_time_ms']['p50']:.1f} / "
             f"{r['frame_time_ms']['p95']:.1f} / {r['frame_time_ms']['p99']:.1f} ms |",
             f"| drops | {r['drops'] or 'none'} |"]
    for key, name in (("accuracy", "DenseWarper"),
                      ("accuracy_untrained", "untrained identity warps (naive interleaving)")):
        a = r.get(key) or {}
        if a.get("matched"):
            lines.append(f"| {name}: MPJPE root-aligned / absolute / PA | {a['mpjpe_root_mm']:.1f} / "
                         f"{a['mpjpe_abs_mm']:.1f} / {a['pa_mpjpe_mm']:.1f} mm ({a['matched']} poses vs "
                         f"`{r['ground_truth_topic']}`: {r['ground_truth']}) |")
    if r.get("people"):
        lines += ["", people_markdown(r["people"])]
    if r.get("clock_offsets_ms"):
        est = ", ".join(f"{c} {v['offset']:+.1f} +- {v['sigma']:.1f}" + (" (known)" if v.get("known") else "")
                        for c, v in r["clock_offsets_ms"].items())
        seen = min((v.get("seen_s", 0.0) for v in r["clock_offsets_ms"].values()), default=0.0)
        applied = ("applied where known: standard error <= 3 ms from >= 5 s of motion; the shortest "
                   f"span seen here {seen:.1f} s") if r.get("clock_offsets_applied") else "not applied"
        lines += ["", f"Clock offsets estimated from the people (ms, against the first camera; {applied}): {est}"
                  + (f"; stamps shifted on purpose: {r['stamp_offsets_added_ms']}" if r["stamp_offsets_added_ms"]
                     else "")]
    if r.get("clock_pairs_ms"):
        lines += ["", clock_pairs_markdown(r["clock_pairs_ms"])]
    if r.get("pictures"):
        lines += ["", "Pictures: " + ", ".join(f"`{v}`" for v in r["pictures"].values())]
    lines.append(f"\nOutput bag: `{r['output_bag']}`")
    return "\n".join(lines) + "\n"


def people_markdown(p: dict) -> str:
    lines = [f"People: {p['instants']} instants after the first camera cycle; people per instant "
             f"{p['people_per_instant']}" + (f"; all {p['expected']} tracked at {100 * p['all_tracked_share']:.1f} % "
                                              "of them" if "expected" in p else ""),
             f"ids new after the start: {p['new_ids_after_start'] or 'none'}; swaps: {p['swaps']}",
             f"tracker: {p.get('tracker', {})}", "",
             "| track | instants | share | median reprojection (px, own detections, target camera) |",
             "|---|---|---|---|"]
    lines += [f"| {i} | {t['instants']} | {100 * t['share']:.1f} % | {t['median_reprojection_px']:.1f} |"
              for i, t in p["tracks"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
