"""Every person in view: 2D people per frame in, one tracked 3D pose per person and instant out.

The single-person `PosePipeline` fuses "the" heatmaps of each frame; here a frame holds several
people, each with its own heatmaps (a top-down crop through the backbone, or rendered from a user's
2D keypoints). The interleaved buffer is the same; what changes is per window:
1. tracks without a pose for `timeout` end;
2. each frame of the window (and its history) matches its still-unassigned people to the live tracks
   predicted to *that frame's* stamp (`association`, Hungarian with a gate); a frame remembers its
   assignment, so it is matched once per track;
3. a still-unassigned person that triangulates with a track's people in the window's other views
   joins that track (the views agree even where the track's own few-view pose is poor);
4. unmatched people of the window's frames that agree across cameras start a track (or get back the
   id of one that ended nearby moments ago);
5. every live track seen in at least `min_views` views is fused at the target instant, all tracks in
   one batched `pose_at` call; joints out of a body's reach are dropped, a pose far from its track's
   prediction is refused, and two tracks that fuse to one person become one.

Images in (`process`): each live track's predicted pose, projected into the frame, gives its crop;
the person detector (`detector`, MoveNet MultiPose) runs every `detector_period` frames of a camera,
on every frame while a camera sees no track, and where a track's crop did not find its person; its
people not covered by a track crop get crops of their own; all crops of a frame go through the
backbone in one batch. People given as keypoints get heatmaps rendered in the model's own crop.

In the node, `frame_heatmaps` runs on the backbone thread and reads the tracks the fusion thread
updates: it only takes a snapshot of the live tracks and their last poses.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from dense_warper_ros import association as assoc
from dense_warper_ros.buffer import BufferConfig, Frame, InterleavedBuffer, Window
from dense_warper_ros.cameras import Camera, apply_affine, root_crop_affine, undistorter
from dense_warper_ros.heatmaps import render_gaussians
from dense_warper_ros.model import PreviousFrames
from dense_warper_ros.people import Person2D, render_keypoints, render_person
from dense_warper_ros.people_detection import Detector, crop_people, detection_boxes, iou
from dense_warper_ros.pipeline import PoseResult
from dense_warper_ros.skeleton import NUM_JOINTS, PELVIS
from dense_warper_ros.tracks import TrackingConfig, TrackRegistry, centre, mean_distance
from dense_warper_ros.window_tensors import projected_box, projections, stack_previous, stack_views


ROOT_BOX_M = 2.0      # the model's crop: a box this wide around the root (HeatmapConfig.box_m of training)
CLOCK_REFRESH_NS = 1_000_000_000    # each camera pair's clock-offset fit refreshed this often (stream time)


@dataclass(frozen=True)
class MultiPersonConfig:
    buffer: BufferConfig
    tracking: TrackingConfig = TrackingConfig()
    gate: float = 0.25                 # association: mean joint distance / person size
    birth_gate: float = 0.12           # births: the same, in every view of the new person
    birth_views: int = 3               # views that must agree on a new person (fewer when the rig has fewer)
    min_score: float = 0.3             # 2D joints below this confidence are not used to associate
    min_joints: int = 8                # fewer fused joints: no pose
    detector_period: int = 5           # frames of a camera between detector runs (1: every frame)
    crop_margin: float = 1.3           # crop box = box of the projected track x this
    max_jump_m: float = 0.5            # a fused pose further than this (mean joint) from its track's
                                       # prediction is dropped
    sigma: float = 2.5                 # heatmap px, for people given as keypoints
    fill_lost: float = 0.4             # a joint a view lost (below min_score) is drawn where its track
                                       # predicts it, with this confidence (0: left empty)
    fill_weight: float = 0.25          # ... and weighs at most this much in the triangulation
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not (0 < self.gate and 0 < self.birth_gate):
            raise ValueError("association gates must be > 0")
        if not 0 <= self.fill_lost <= 1:
            raise ValueError(f"fill_lost must be in [0, 1], got {self.fill_lost}")
        if not self.fill_weight >= 0:
            raise ValueError(f"fill_weight must be >= 0, got {self.fill_weight}")
        if self.detector_period < 1:
            raise ValueError(f"detector_period must be >= 1, got {self.detector_period}")


@dataclass
class PeopleFrame:
    """What the buffer keeps per frame: its people and which track each is (once matched)."""
    camera: Camera
    frame_id: str
    people: list[Person2D]
    assigned: dict[int, int] = field(default_factory=dict)    # track id -> person index
    tried: set[int] = field(default_factory=set)              # track ids already matched against
    rendered: dict = field(default_factory=dict)              # person index -> (heatmaps, affine) as fused
    reported: set[int] = field(default_factory=set)           # track ids handed to the clock-offset estimator
    stamp_ns: int = 0                                         # the frame's own stamp (the buffer's may be corrected)

    def unassigned(self) -> list[int]:
        taken = set(self.assigned.values())
        return [i for i in range(len(self.people)) if i not in taken]


class MultiPersonPipeline:
    """Interleaved buffer + association + tracks + batched DenseWarper fusion."""

    fusion = None      # the several-people fusion runs in the caller's process (no FusionProcess)

    def __init__(self, *, model, config: MultiPersonConfig, backbone=None, detector: Detector | None = None):
        self.model = model
        self.backbone = backbone
        self.detector = detector
        self.config = config
        self.buffer = InterleavedBuffer(config.buffer)
        self.tracks = TrackRegistry(config.tracking)
        self.device = torch.device(config.device)
        self.stats: Counter[str] = Counter()
        self.ended: list[int] = []          # ids of tracks that ended since the caller last cleared it
        self._since_detection: dict[int, int] = {}
        self.weights_source = ""
        self.clock = None                   # a `clock_offsets.ClockOffsetEstimator` to feed, or None
        self.apply_clock = False            # correct each camera's stamps by the clock's estimate
        self.clock_estimate: dict = {}      # camera -> OffsetEstimate, as last refreshed
        self._corrections: dict[int, int] = {}
        self._clock_refreshed = -CLOCK_REFRESH_NS

    @property
    def heatmap_size(self) -> int:
        return self.model.heatmap_size

    # --- frames in -----------------------------------------------------------------------------
    def people_frame(self, people: Sequence[Person2D], camera: Camera, frame_id: str = "") -> PeopleFrame:
        """A frame's people ready for the buffer: people given as keypoints need two confident
        joints (their heatmaps are rendered when a track first uses them); duplicates (overlapping
        crops of one person) go."""
        ready = [p for p in people if p.heatmaps is not None or p.box(self.config.min_score) is not None]
        if len(ready) < len(people):
            self.stats["people_too_few_joints"] += len(people) - len(ready)
        cap = 2 * self.config.tracking.max_people + 4     # a flood (a broken detector) must not stall births
        if len(ready) > cap:
            self.stats["people_over_limit"] += len(ready) - cap
            ready = sorted(ready, key=lambda p: -p.score)[:cap]
        return PeopleFrame(camera=camera, frame_id=frame_id,
                           people=assoc.deduplicate(ready, self.config.min_score))

    def push_people(self, camera_index: int, stamp_ns: int, people: Sequence[Person2D], camera: Camera,
                    frame_id: str = "") -> list[PoseResult]:
        """A frame given as 2D people (a user's detector, the 2D node, the benchmark)."""
        return self.push_heatmaps(camera_index, stamp_ns, self.people_frame(people, camera, frame_id))

    def push_heatmaps(self, camera_index: int, stamp_ns: int, data: PeopleFrame) -> list[PoseResult]:
        """A prepared frame (`people_frame`, `frame_heatmaps`) into the buffer -> the poses it completes.
        With `apply_clock`, the buffer and the model see the stamp corrected by the camera's
        estimated clock offset; poses and their view stamps keep the frames' own stamps."""
        data.stamp_ns = stamp_ns
        stamp = stamp_ns - self._clock_correction(camera_index, stamp_ns)
        return self._solve_all(self.buffer.push(Frame(camera=camera_index, stamp_ns=stamp, data=data)))

    def _clock_correction(self, camera_index: int, stamp_ns: int) -> int:
        """ns to subtract from a camera's stamps: with `apply_clock`, its estimate's `correction_s`;
        else 0. The estimate is refreshed either way (so that /diagnostics can report offsets that
        are not applied), one camera pair at a time, each pair every CLOCK_REFRESH_NS of stream time."""
        if self.clock is None:
            return 0
        if stamp_ns - self._clock_refreshed >= CLOCK_REFRESH_NS // max(len(self.clock.pairs), 1):
            self._clock_refreshed = stamp_ns
            self.clock.refresh_next_pair()
            self.clock_estimate = self.clock.estimate_cached()
            self._corrections = {c: int(round(e.correction_s * 1e9)) for c, e in self.clock_estimate.items()
                                 if self.apply_clock}
        return self._corrections.get(camera_index, 0)

    def clock_correction_s(self, camera_index: int) -> float:
        """What is subtracted from this camera's stamps now (s; 0 while nothing is applied)."""
        return self._corrections.get(camera_index, 0) * 1e-9

    def frame_heatmaps(self, stamp_ns: int, image_rgb: np.ndarray, camera: Camera, frame_id: str = "", *,
                       track: bool = True, camera_index: int = 0) -> PeopleFrame:
        """The backbone's part of an image frame (the node runs it on its own thread). `track=False`
        (after a reset) crops nobody from the tracks."""
        people = self.frame_people(camera_index, stamp_ns, image_rgb, camera, track=track)
        return self.people_frame(people, camera, frame_id)

    def process(self, camera_index: int, stamp_ns: int, image_rgb: np.ndarray, camera: Camera,
                frame_id: str = "") -> list[PoseResult]:
        data = self.frame_heatmaps(stamp_ns, image_rgb, camera, frame_id, camera_index=camera_index)
        return self.push_heatmaps(camera_index, stamp_ns, data)

    def frame_people(self, camera_index: int, stamp_ns: int, image_rgb: np.ndarray, camera: Camera, *,
                     track: bool = True) -> list[Person2D]:
        """One crop per tracked person and per newcomer the detector found, all in one batch. The
        detector runs on its schedule, on every frame while no track is in view, and again on a
        frame where a track's crop did not find its person (people crossing: the crop locked onto
        the other one)."""
        tracks = list(self.tracks.live.values()) if track else []
        stamp_ns -= self._corrections.get(camera_index, 0)      # the tracks' time base
        boxed = [(t, b) for t in tracks if (b := self._track_box(t, camera, stamp_ns)) is not None]
        if self.detector is None:                 # crops from the tracks; the whole frame while nobody is tracked
            boxes = [b for _, b in boxed] or ([] if tracks else [np.full(4, np.nan)])
            return crop_people(self.backbone, image_rgb, boxes, self.device)
        since = self._since_detection.get(camera_index, self.config.detector_period)
        if since < self.config.detector_period and boxed:
            self._since_detection[camera_index] = since + 1
            people = crop_people(self.backbone, image_rgb, [b for _, b in boxed], self.device)
            if self._crops_found_their_tracks(boxed, people, camera, stamp_ns):
                return people
            self.stats["detector_reruns"] += 1
        self._since_detection[camera_index] = 1
        detected = self._detected_boxes(image_rgb)
        # the detector's boxes first; a track's predicted box only where the detector saw nobody
        boxes = detected + [b for _, b in boxed if all(iou(b, d) <= 0.3 for d in detected)]
        return crop_people(self.backbone, image_rgb, boxes, self.device)

    def _crops_found_their_tracks(self, boxed: list, people: list[Person2D], camera: Camera,
                                  stamp_ns: int) -> bool:
        """Each track crop's person lies where its track predicts, and no two crops found one person."""
        c = self.config
        if len(assoc.deduplicate(people, c.min_score)) < len(people):
            return False
        return all(assoc.reprojection_error(t.predict(stamp_ns), camera, p, c.min_score) <= c.gate
                   for (t, _), p in zip(boxed, people))

    def _track_box(self, track, camera: Camera, stamp_ns: int) -> np.ndarray | None:
        return projected_box(camera, track.predict(stamp_ns), margin=self.config.crop_margin,
                             min_joints=self.config.min_joints, min_depth=0.05)

    def _detected_boxes(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        self.stats["detector_runs"] += 1
        return detection_boxes(self.detector(image_rgb), min_score=self.config.min_score,
                               margin=self.config.crop_margin)

    def flush(self) -> list[PoseResult]:
        return self._solve_all(self.buffer.flush())

    def reset(self) -> None:
        self.buffer.reset()
        self.ended += list(self.tracks.live)
        self.tracks.reset()
        if self.clock is not None:
            self.clock.reset()
            self.clock_estimate, self._corrections = {}, {}
            self._clock_refreshed = -CLOCK_REFRESH_NS

    def close(self) -> None:
        """Nothing to end: the several-people fusion runs in the caller's process."""

    def people_counts(self) -> dict[str, int]:
        """For /diagnostics: people tracked now; births, deaths, re-identifications, merges, association
        rejections, detector runs."""
        return {"people_tracked": len(self.tracks.live), **self.tracks.stats, **self.stats}

    # --- per window ----------------------------------------------------------------------------
    def _solve_all(self, windows: list[Window]) -> list[PoseResult]:
        out: list[PoseResult] = []
        for w in windows:
            out += self._solve(w)
        return out

    @torch.inference_mode()
    def _solve(self, w: Window) -> list[PoseResult]:
        t0 = time.perf_counter()
        self.ended += self.tracks.expire(w.target_ns)
        frames = sorted({id(f): f for f in _window_frames(w)}.values(), key=lambda f: f.stamp_ns)
        for f in frames:
            self._associate(f)
        self._extend_tracks(w)
        self._births(w)
        ids = self._fusable(w)
        if not ids:
            return []
        results = self._fuse(w, ids, t0)
        gone = self.tracks.merge_duplicates({r.track_id: r.points for r in results}, w.target_ns)
        self.ended += gone
        self.stats["poses"] += len(results) - len(gone)
        return [r for r in results if r.track_id not in gone]

    def _associate(self, f: Frame) -> None:
        data: PeopleFrame = f.data
        ids = [i for i in self.tracks.live if i not in data.tried and i not in data.assigned]
        free = data.unassigned()
        data.tried.update(ids)
        if not ids or not free:
            return
        preds = [self.tracks.live[i].predict(f.stamp_ns) for i in ids]
        costs = assoc.cost_matrix(preds, data.camera, [data.people[k] for k in free], self.config.min_score)
        pairs, refused = assoc.match(costs, self.config.gate)
        self.stats["association_rejections"] += refused
        for r, c in pairs:
            data.assigned[ids[r]] = free[c]

    def _candidates(self, w: Window) -> list[assoc.Candidate]:
        """The window's unassigned people."""
        return [assoc.Candidate(view=v, person=k, camera=f.data.camera, observed=f.data.people[k])
                for v, f in enumerate(w.frames) if f is not None for k in f.data.unassigned()]

    def _extend_tracks(self, w: Window) -> None:
        """Unassigned people of the window that agree, by triangulation, with a track's people in the
        other views join that track (best-seen tracks first)."""
        free = self._candidates(w)
        if not free:
            return
        groups = []
        for i in self.tracks.live:
            g = [assoc.Candidate(view=v, person=f.data.assigned[i], camera=f.data.camera,
                                 observed=f.data.people[f.data.assigned[i]])
                 for v, f in enumerate(w.frames) if f is not None and i in f.data.assigned]
            if g and len(g) < len(w.frames):
                groups.append((i, g))
        for i, g in sorted(groups, key=lambda x: -len(x[1])):
            for c in assoc.best_extensions(g, free, gate=self.config.birth_gate, min_score=self.config.min_score,
                                           min_joints=self.config.min_joints):
                w.frames[c.view].data.assigned[i] = c.person
                free.remove(c)
                self.stats["joined_by_triangulation"] += 1

    def _births(self, w: Window) -> None:
        if self.tracks.full():
            return
        cands = self._candidates(w)
        target = w.frames[w.target_camera]
        must = {(w.target_camera, k) for k in target.data.unassigned()}
        if not must or len({c.view for c in cands}) < 2:
            return
        groups = assoc.propose_births(cands, gate=self.config.birth_gate, min_score=self.config.min_score,
                                      min_joints=self.config.min_joints, must_include=must)
        need = min(self.config.birth_views, len(w.frames))
        for group, X in groups:
            if len(group) < need:
                self.stats["births_too_few_views"] += 1
                continue
            if self.tracks.full():
                break
            track = self.tracks.birth(w.target_ns, X)
            for c in group:
                data = w.frames[c.view].data
                data.assigned[track.id] = c.person
                data.tried.add(track.id)

    def _fusable(self, w: Window) -> list[int]:
        """Live tracks with enough views in the window (and, for pairwise models, the target's)."""
        out = []
        for i in sorted(self.tracks.live):
            seen = [v for v, f in enumerate(w.frames) if f is not None and i in f.data.assigned]
            if len(seen) >= self.config.buffer.min_views and (
                    self.model.time_conditioned or w.target_camera in seen):
                out.append(i)
        return out

    def _fuse(self, w: Window, ids: list[int], t0: float) -> list[PoseResult]:
        """All tracks of a window in one `pose_at` call: batch axis = track."""
        per_track = [stack_views(w.frames, w.target_ns, self._view_of(i), *self._hm_spec) for i in ids]
        hm, A, times, valid = (torch.stack(x) for x in zip(*per_track))            # (T, V, ...)
        cams: list[Camera | None] = [None if f is None else f.data.camera for f in w.frames]
        P = projections(cams, len(ids))                                             # (T, V, 3, 4)
        dev = self.device
        out = self.model.pose_at(hm, P.to(dev), A.to(dev), times.to(dev), valid.to(dev),
                                 torch.zeros(len(ids), dtype=torch.float64, device=dev),
                                 undistort=undistorter(cams), previous=self._previous(w, ids),
                                 weight_cap=self._fill_caps(w, ids))
        latency = time.perf_counter() - t0
        results = []
        for b, i in enumerate(ids):
            points = assoc.body_joints(out.points[b].double().cpu().numpy())
            used = [f for f in w.frames if f is not None and i in f.data.assigned]
            if int(np.isfinite(points).all(1).sum()) < self.config.min_joints:
                self.stats["fusion_failed"] += 1
                continue
            track = self.tracks.live[i]
            if not self._believable(points, track.predict(w.target_ns)):
                self.stats["implausible_poses"] += 1
                continue
            track.update(w.target_ns, points)
            self._report_views(w, i)
            results.append(PoseResult(
                stamp_ns=w.frames[w.target_camera].data.stamp_ns, points=points,
                confidence=out.confidence[b].double().cpu().numpy(),
                covariance=out.covariance[b].double().cpu().numpy(),
                num_views=out.num_views[b].cpu().numpy().astype(np.int64),
                view_stamps_ns=tuple(f.data.stamp_ns for f in used),
                view_frame_ids=tuple(f.data.frame_id for f in used),
                track_id=i, latency_s=latency, rejected=out.rejected[b].cpu().numpy(),
                reprojection_px=self._reprojection(points, w.frames[w.target_camera], i)))
        return results

    def _report_views(self, w: Window, track_id: int) -> None:
        """Each frame's person of a fused track, once, to the clock-offset estimator (when set)."""
        if self.clock is None:
            return
        for v, f in enumerate(w.frames):
            if f is not None and track_id in f.data.assigned and track_id not in f.data.reported:
                f.data.reported.add(track_id)
                p = f.data.people[f.data.assigned[track_id]]
                self.clock.observe(v, f.data.stamp_ns, track_id, p.keypoints, p.scores, f.data.camera)

    def _reprojection(self, points: np.ndarray, target: Frame, track_id: int) -> float:
        """Median px between `points` projected into the target frame and the track's person there."""
        k = target.data.assigned.get(track_id)
        if k is None:
            return float("nan")
        person = target.data.people[k]
        ok = np.isfinite(points).all(1) & person.confident(self.config.min_score)
        if not ok.any():
            return float("nan")
        return float(np.median(np.linalg.norm(target.data.camera.project(points[ok]) - person.keypoints[ok], axis=1)))

    def _believable(self, points: np.ndarray, predicted: np.ndarray) -> bool:
        """A body (extent check) near where its track predicts: a pose from two views far apart in
        time or angle can land metres off, and must neither be published nor move the track."""
        return assoc.plausible(points, self.config.min_joints) and \
            mean_distance(points, predicted) <= self.config.max_jump_m

    def _previous(self, w: Window, ids: list[int]) -> PreviousFrames | None:
        K = self.model.config.temporal_context
        if not K:
            return None
        per_track = [stack_previous(w.previous, K, w.target_ns, self._view_of(i), *self._hm_spec) for i in ids]
        hm, A, times, valid = (torch.stack(x) for x in zip(*per_track))           # (T, V, K, ...)
        dev = self.device
        return PreviousFrames(heatmaps=hm, affines=A.to(dev), times=times.to(dev), valid=valid.to(dev))

    @property
    def _hm_spec(self) -> tuple:
        """Shape, dtype and device of one person's heatmaps in a frame."""
        s = self.heatmap_size
        return (NUM_JOINTS, s, s), torch.float32, self.device

    def _view_of(self, track_id: int):
        """frame -> the track's person's (heatmaps, affine) there, or None."""
        return lambda f: self._heatmaps(f, track_id) if track_id in f.data.assigned else None

    def _heatmaps(self, f: Frame, track_id: int) -> tuple[torch.Tensor, np.ndarray]:
        """The heatmaps (17, h, w) and (2, 3) affine of the track's person in frame `f`, once per
        frame and person: the backbone's, or rendered from its keypoints in the model's crop (a 2 m
        box around the track's root at that frame's stamp, the crop the warps were trained in);
        joints the view lost are filled in where the track's line through its last poses puts them
        (`Track.fitted`, `_fill_lost`)."""
        k = f.data.assigned[track_id]
        if k not in f.data.rendered:
            p, track = f.data.people[k], self.tracks.live[track_id]
            if p.heatmaps is not None:
                hm, A = p.heatmaps, np.asarray(p.affine)
            else:
                A = self._root_crop(f.data.camera, track.predict(f.stamp_ns))
                if A is None:
                    hm, A = render_person(p, self.heatmap_size, self.config.sigma, min_score=self.config.min_score)
                else:
                    hm = render_keypoints(p, A, self.heatmap_size, self.config.sigma,
                                          min_score=self.config.min_score)
            hm = self._fill_lost(hm, A, p, f.data.camera, track, f.stamp_ns)
            f.data.rendered[k] = (hm.to(self.device), A)
        return f.data.rendered[k]

    def _fill_caps(self, w: Window, ids: list[int]) -> torch.Tensor | None:
        """(T, V, J) caps on the DLT weights: `fill_weight` where a view lost the joint, +inf
        elsewhere. A filled joint's heatmap is the track's prediction, not a detection: it steers
        the warps (an empty channel in the target view misleads every view's warp of that joint)
        but should pull the triangulated point less than a detection does (docs/multi_person.md)."""
        if self.config.fill_lost <= 0:
            return None
        cap = torch.full((len(ids), len(w.frames), NUM_JOINTS), float("inf"))
        for b, i in enumerate(ids):
            for v, f in enumerate(w.frames):
                if f is not None and i in f.data.assigned:
                    lost = ~f.data.people[f.data.assigned[i]].confident(self.config.min_score)
                    cap[b, v, torch.from_numpy(lost)] = self.config.fill_weight
        return cap.to(self.device)

    def _fill_lost(self, hm: torch.Tensor, A: np.ndarray, p: Person2D, camera: Camera, track,
                   stamp_ns: int) -> torch.Tensor:
        """`hm` (17, h, w) with each joint the person lost (below min_score) replaced by a Gaussian
        of peak `fill_lost` where the track's line through its last poses (`Track.fitted`) puts it
        at `stamp_ns`, when that is in front of the camera and in the image. An occluded joint
        otherwise leaves its view's channel empty, and the warps, guided by the target view, carry
        the other views' evidence for it poorly: in crowds this is most of what each person's error
        grows by."""
        lost = ~p.confident(self.config.min_score)
        if self.config.fill_lost <= 0 or not lost.any():
            return hm
        predicted = track.fitted(stamp_ns)                                          # (17, 3)
        lost &= np.isfinite(predicted).all(1)
        if not lost.any():
            return hm
        uv = np.full((NUM_JOINTS, 2), np.nan)
        uv[lost] = camera.project(predicted[lost])
        depth = np.full(NUM_JOINTS, -1.0)
        depth[lost] = camera.to_camera(predicted[lost])[:, 2]
        inside = (uv >= 0).all(1) & (uv[:, 0] < camera.width) & (uv[:, 1] < camera.height)
        lost &= (depth > 0.05) & inside
        if not lost.any():
            return hm
        blobs = render_gaussians(torch.from_numpy(apply_affine(A, uv)).float(), hm.shape[-1], self.config.sigma,
                                 valid=torch.from_numpy(lost))                     # (17, h, w)
        keep = torch.from_numpy(~lost).to(hm)[:, None, None]
        return hm * keep + self.config.fill_lost * blobs.to(hm)

    def _root_crop(self, camera: Camera, points: np.ndarray) -> np.ndarray | None:
        root = points[PELVIS] if np.isfinite(points[PELVIS]).all() else centre(points)
        if root is None or camera.to_camera(root[None])[0, 2] <= 0.3:
            return None
        return root_crop_affine(camera, root, box_mm=1000 * ROOT_BOX_M, out_size=self.heatmap_size)


def _window_frames(w: Window) -> list[Frame]:
    out = [f for f in w.frames if f is not None]
    for earlier in w.previous:
        out += list(earlier)
    return out
