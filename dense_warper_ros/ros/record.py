"""Write rosbag2 recordings as a real rig would produce them: per camera image_raw (or
image_raw/compressed) + camera_info, /tf_static for the extrinsics, and a ground-truth topic.

    python -m dense_warper_ros.ros.record pose2sim  OUT [--dense] [--raw] [--scale 0.5]
    python -m dense_warper_ros.ros.record synthetic OUT [--clip walk] [--frames 24] [--dense] [--raw]

Images are JPEG `CompressedImage`s (image_raw/compressed), as a bandwidth-limited rig sends them;
`--raw` writes lossless `sensor_msgs/Image` rgb8 instead (image_raw), for either source.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from tqdm import tqdm

from dense_warper_ros.data.recording import Recording
from dense_warper_ros.ros import recording_msgs as rm
from dense_warper_ros.ros.bags import BagWriter


def write_bag(rec: Recording, path: str | Path, *, compressed: bool = False, progress: bool = True) -> Path:
    """`rec` as a rosbag2 directory at `path` (replaced). The ground truth's name goes into the bag's
    metadata (`GROUND_TRUTH_NOTE`), so a replay's report says what it scored against."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = rec.frames[0][1]
    with BagWriter(path) as w:
        if rec.ground_truth:
            w.describe(rm.GROUND_TRUTH_NOTE, rec.truth_name or "unnamed")
        w.write("/tf_static", rm.tf_static(rec, first), first - 1_000_000)
        for i in range(len(rec.names)):
            w.write(rm.info_topic(rec.names[i]), rm.camera_info(rec, i, first), first - 1_000_000)
        for c, stamp, rgb in tqdm(rec.frames, desc=f"writing {path.name}", disable=not progress, unit="frame"):
            w.write(rm.info_topic(rec.names[c]), rm.camera_info(rec, c, stamp), stamp)
            image = rm.image(rec, c, stamp, rgb, compressed=compressed)
            w.write(rm.image_topic(rec.names[c], compressed), image, stamp)
        for stamp, pts in rec.ground_truth:
            w.write(rm.GROUND_TRUTH_TOPIC, rm.ground_truth(rec, stamp, pts), stamp)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=("pose2sim", "synthetic"))
    ap.add_argument("out", type=Path)
    ap.add_argument("--dense", action="store_true", help="every camera at every instant (reference)")
    ap.add_argument("--raw", action="store_true", help="sensor_msgs/Image instead of CompressedImage")
    ap.add_argument("--scale", type=float, default=0.5, help="pose2sim: image scale")
    ap.add_argument("--clip", default="walk")
    ap.add_argument("--frames", type=int, default=24)
    args = ap.parse_args(argv)
    if args.source == "pose2sim":
        from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
        rec = pose2sim_recording(interleaved=not args.dense, scale=args.scale)
    else:
        from dense_warper_ros.data.synthetic_recording import synthetic_recording
        rec = synthetic_recording(args.clip, num_frames=args.frames, dense=args.dense)
    write_bag(rec, args.out, compressed=not args.raw)
    print(f"wrote {args.out}: {len(rec.frames)} frames from {len(rec.names)} cameras "
          f"({rec.source}); camera rates {[round(r, 2) for r in rec.camera_rates_hz]} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
