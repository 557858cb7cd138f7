"""`make demo` (`python -m dense_warper_ros.ros.demo`): the main job on the bundled real recordings.

1. builds the recording from the pose2sim demo (4 real cameras, interleaved: camera c at frames
   f mod 4 = c, 15 fps each) as a rosbag2 (MCAP) bag, with the pseudo ground truth
   `dense_pipeline_truth` (the same pipeline on all 4 views at every frame), named in the bag;
2. replays it through the node's per-frame path offline with the shipped weights;
3. the same for pose2sim's two-person recording (same rig, no ground truth) with up to 4 people:
   how often each person is tracked, id changes, reprojection against each person's own detections,
   and each camera's clock offset estimated from the people (reported, not applied);
4. prints the summary tables and where the pictures are.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

OUT = Path("out/demo")
MULTI = Path(__file__).resolve().parents[2] / "data" / "pose2sim_multi"


def main() -> int:
    torch.set_num_threads(2)
    t0 = time.time()
    bag = OUT / "pose2sim_interleaved"
    from dense_warper_ros.ros.bags import notes_of
    from dense_warper_ros.ros.recording_msgs import GROUND_TRUTH_NOTE
    if not (bag / "metadata.yaml").exists() or GROUND_TRUTH_NOTE not in notes_of(bag):
        from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
        from dense_warper_ros.ros.record import write_bag
        print("[demo] building the recording from the pose2sim demo (and its pseudo ground truth "
              "dense_pipeline_truth)...", flush=True)
        rec = pose2sim_recording(interleaved=True, scale=0.5)
        write_bag(rec, bag, compressed=True)
        print(f"[demo] {bag}: {len(rec.frames)} frames, {rec.source} ({time.time() - t0:.0f} s)", flush=True)
    from dense_warper_ros.ros.evaluate import main as evaluate
    rc = evaluate([str(bag), "--out", str(OUT / "eval"), "--timing", "windowed", "--compare-untrained"])
    multi = two_person_bag()
    rc = rc or evaluate([str(multi), "--out", str(OUT / "eval_multi"), "--timing", "windowed", "--max-people", "4",
                         "--expect-people", "2", "--estimate-clock-offsets"])
    print(f"[demo] done in {time.time() - t0:.0f} s. Reports: {OUT / 'eval' / 'summary.md'} (one person), "
          f"{OUT / 'eval_multi' / 'summary.md'} (two people); report.json and pictures beside them")
    return rc


def two_person_bag() -> Path:
    """pose2sim's two-person recording as an interleaved bag (built once)."""
    bag = OUT / "pose2sim_multi_interleaved"
    if not (bag / "metadata.yaml").exists():
        from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
        from dense_warper_ros.ros.record import write_bag
        print("[demo] building the two-person recording...", flush=True)
        rec = pose2sim_recording(interleaved=True, scale=0.5, with_truth=False, root=MULTI)
        write_bag(rec, bag, compressed=True)
    return bag


if __name__ == "__main__":
    sys.exit(main())
