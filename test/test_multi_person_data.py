"""The multi-person synthetic scene: paths keep people apart except at designed crossings, detections
are the projected truth within the detector noise, shuffled, with false detections, misses and
occlusions at the configured rates, and single-person scenes repeat the same draws."""
import dataclasses

import numpy as np
import pytest

from dense_warper_ros.data import motion, rigs, schedules
from dense_warper_ros.data import multi_person as mp
from dense_warper_ros.data.detector_noise import NoiseConfig
from dense_warper_ros.skeleton import H36M_BONES, NUM_JOINTS, PELVIS

QUIET = dict(false_detection_rate=0.0, missed_person_prob=0.0, occlusion_prob=0.0)


@pytest.fixture(scope="module")
def cams():
    return rigs.make_rig()


@pytest.fixture(scope="module")
def schedule():
    """Interleaved 4 cameras at 120 Hz over the default 4 s scene."""
    return schedules.interleaved(schedules.ScheduleConfig(rate_hz=120.0), 4, 0.0, 4.0)


def scene(noise=None, **kw):
    return mp.make_scene(mp.MultiPersonConfig(**kw), noise or NoiseConfig())


def detections_by_pid(frames, ids):
    """{(frame index, pid): Person2D} of the real detections."""
    return {(f, pid): p for f, (fr, fid) in enumerate(zip(frames, ids)) for p, pid in zip(fr.people, fid) if pid >= 0}


@pytest.mark.parametrize("num_people,seed", [(2, 0), (3, 1), (3, 2), (4, 3), (5, 4)])
def test_people_stay_in_the_area_and_apart_except_at_designed_crossings(num_people, seed):
    s = scene(num_people=num_people, seed=seed)
    cfg = s.config
    t = np.linspace(0, cfg.duration_s, 2001)
    floor = s.truth(t)[:, :, PELVIS, :2]                                       # (P, T, 2)
    assert np.linalg.norm(floor, axis=-1).max() <= cfg.area_radius_m + 1e-9
    crossed = set()
    for i in range(num_people):
        for j in range(i + 1, num_people):
            d = np.linalg.norm(floor[i] - floor[j], axis=-1)
            if (i, j) in s.crossings:
                lo, hi = cfg.crossing_distance_m
                assert lo - 1e-3 <= d.min() <= hi + 1e-3, (i, j, d.min())
                assert 0.25 * cfg.duration_s < t[d.argmin()] < 0.75 * cfg.duration_s   # inside the clip
                crossed |= {i, j}
            else:
                assert d.min() >= cfg.min_separation_m - 1e-9, (i, j, d.min())
    assert crossed == set(range(num_people))              # everybody takes part in a close pass
    assert len(s.crossings) == num_people - 1


def test_no_crossing_keeps_everybody_apart():
    s = scene(num_people=3, crossing=False, seed=5)
    floor = s.truth(np.linspace(0, 4, 801))[:, :, PELVIS, :2]
    d = [np.linalg.norm(floor[i] - floor[j], axis=-1).min() for i in range(3) for j in range(i + 1, 3)]
    assert not s.crossings and min(d) >= 1.0


def test_truth_is_held_out_clips_moved_along_smooth_paths():
    s = scene(num_people=4, duration_s=8.0, seed=2)        # longer than every clip: ping-pong playback
    names = [p.clip.name for p in s.people]
    assert set(names) <= set(motion.TEST_CLIPS) and len(set(names)) == 4          # each its own motion
    t = np.linspace(0, 8.0, 8 * 240 + 1)
    X = s.truth(t)                                                                 # (P, T, 17, 3)
    assert X.shape == (4, len(t), NUM_JOINTS, 3)
    for p, person in enumerate(s.people):
        np.testing.assert_allclose(X[p, :, PELVIS, :2], person.path(t), atol=1e-9)
        child, parent = np.array(H36M_BONES).T
        lengths = np.linalg.norm(X[p][:, child] - X[p][:, parent], axis=-1)
        np.testing.assert_allclose(lengths, np.broadcast_to(person.clip.bone_lengths[child], lengths.shape),
                                   atol=1e-6)
    step = np.linalg.norm(np.diff(X, axis=1), axis=-1).max()
    assert step < 0.1, step                                  # no jump at a clip's end (< 24 m/s)
    assert np.abs(X[..., 2]).max() < 2.5                       # people, not flying objects


def test_observations_project_the_truth_within_the_detector_noise(cams, schedule):
    noise = NoiseConfig(swap_prob=0.0, seed=3)
    s = scene(noise, num_people=3, seed=1, **QUIET)
    frames, ids = s.observations_with_ids(cams, schedule)
    assert len(frames) == len(schedule) and len(ids) == len(frames)
    stamps = np.array([f.stamp_ns for f in frames])
    assert all(isinstance(f.stamp_ns, int) for f in frames) and (np.diff(stamps) >= 0).all()
    assert sorted(zip(stamps.tolist(), [f.camera for f in frames])) == \
        sorted(zip(np.round(schedule.time * 1e9).astype(int).tolist(), schedule.camera.tolist()))
    errs = []
    for (f, pid), person in detections_by_pid(frames, ids).items():
        truth = s.truth(np.array([frames[f].stamp_ns * 1e-9]))[pid, 0]
        uv = cams[frames[f].camera].project(truth)
        seen = np.isfinite(person.keypoints).all(1)
        assert seen.sum() >= 4 and (person.scores[seen] >= 0.6).all() and (person.scores[~seen] == 0).all()
        errs.append(np.linalg.norm(person.keypoints[seen] - uv[seen], axis=-1))
    errs = np.concatenate(errs)
    sigma = np.hypot(noise.jitter_px, noise.bias_px)                            # per axis
    assert 0.8 * sigma < np.sqrt(np.mean(errs ** 2)) / np.sqrt(2) < 1.3 * sigma
    assert errs.max() < 7 * sigma


def test_each_person_has_its_own_detector_errors(cams, schedule):
    noise = NoiseConfig(jitter_px=0.0, bias_px=2.0, swap_prob=0.0, miss_prob=0.0, seed=1)
    s = scene(noise, num_people=2, seed=0, **QUIET)
    frames, ids = s.observations_with_ids(cams, schedule)
    bias = {}                                             # (camera, pid) -> (17, 2) constant offset
    for (f, pid), person in detections_by_pid(frames, ids).items():
        cam = frames[f].camera
        uv = cams[cam].project(s.truth(np.array([frames[f].stamp_ns * 1e-9]))[pid, 0])
        err = person.keypoints - uv
        ref = bias.setdefault((cam, pid), np.full((NUM_JOINTS, 2), np.nan))
        ok, known = np.isfinite(err).all(1), np.isfinite(ref).all(1)
        np.testing.assert_allclose(err[ok & known], ref[ok & known], atol=1e-6)
        ref[ok & ~known] = err[ok & ~known]
    for c in range(len(cams)):
        assert np.nanmax(np.abs(bias[(c, 0)] - bias[(c, 1)])) > 1.0   # not one draw shared by everybody


def test_noiseless_people_are_exactly_the_projected_truth(cams, schedule):
    s = scene(NoiseConfig.noiseless(), num_people=2, seed=0, **QUIET)
    frames, ids = s.observations_with_ids(cams, schedule)
    assert all(sorted(i) == [0, 1] for i in ids)           # both in every view (the default area fits)
    for (f, pid), person in detections_by_pid(frames, ids).items():
        uv = cams[frames[f].camera].project(s.truth(np.array([frames[f].stamp_ns * 1e-9]))[pid, 0])
        seen = np.isfinite(person.keypoints).all(1)
        np.testing.assert_allclose(person.keypoints[seen], uv[seen], atol=1e-6)


def test_people_are_shuffled_and_carry_no_identity(cams, schedule):
    s = scene(NoiseConfig.noiseless(), num_people=3, seed=1, **QUIET)
    frames, ids = s.observations_with_ids(cams, schedule)
    full = [i for i in ids if len(i) == 3]
    assert len(full) > 200
    in_order = np.mean([i == sorted(i) for i in full])
    assert 0.05 < in_order < 0.35, in_order                                     # 1/6 if random
    first = np.bincount([i[0] for i in full], minlength=3) / len(full)
    assert (first > 0.2).all(), first
    assert all(p.extra == {} for f in frames for p in f.people)
    again = s.observations(cams, schedule)[5]                                   # deterministic
    assert again.stamp_ns == frames[5].stamp_ns and len(again.people) == len(frames[5].people)
    assert all(np.array_equal(p.keypoints, q.keypoints, equal_nan=True) for p, q in zip(again.people, frames[5].people))


def test_false_detections_at_the_configured_rate(cams):
    sync = schedules.synchronized(np.linspace(0, 4, 500), 4)                  # 2000 frames
    rate = 0.2
    s = scene(num_people=2, seed=2, false_detection_rate=rate, missed_person_prob=0.0)
    frames, ids = s.observations_with_ids(cams, sync)
    n_false = np.array([i.count(-1) for i in ids])
    assert abs(n_false.mean() - rate) < 0.15 * rate, n_false.mean()
    assert n_false.max() >= 2                                                   # Poisson, not one at most
    fakes = [p for f, i in zip(frames, ids) for p, pid in zip(f.people, i) if pid < 0]
    lo, hi = s.config.false_score
    for p in fakes:
        seen = np.isfinite(p.keypoints).all(1)
        assert seen.sum() >= 4 and lo <= p.score <= hi and (p.scores[seen] <= hi).all()
        assert ((p.keypoints[seen] >= 0) & (p.keypoints[seen] < 1000)).all()
    # skeleton-shaped: the box of a false person is about as big as a real one's at 3-9 m
    sizes = np.array([p.size() for p in fakes])
    assert 100 < np.median(sizes) < 800


def test_missed_people_at_the_configured_rate(cams):
    sync = schedules.synchronized(np.linspace(0, 4, 400), 4)
    base = scene(num_people=3, seed=3, missed_person_prob=0.0)
    some = dataclasses.replace(base, config=dataclasses.replace(base.config, missed_person_prob=0.1))
    a = detections_by_pid(*base.observations_with_ids(cams, sync))
    b = detections_by_pid(*some.observations_with_ids(cams, sync))
    assert set(b) <= set(a)                                                     # the same other draws
    assert all(np.array_equal(b[k].keypoints, a[k].keypoints, equal_nan=True) for k in b)
    missed = 1 - len(b) / len(a)
    assert abs(missed - 0.1) < 0.02, missed


def test_occlusion_hides_the_farther_persons_joints(cams, schedule):
    cfg = dict(num_people=3, seed=0, false_detection_rate=0.0, missed_person_prob=0.0)
    clear = scene(NoiseConfig.noiseless(), occlusion_prob=0.0, **cfg)
    hidden = dataclasses.replace(clear, config=dataclasses.replace(clear.config, occlusion_prob=1.0))
    a = detections_by_pid(*clear.observations_with_ids(cams, schedule))
    frames, ids = hidden.observations_with_ids(cams, schedule)
    b = detections_by_pid(frames, ids)
    lost_joints = 0
    for (f, pid), pa in a.items():
        seen_a = np.isfinite(pa.keypoints).all(1)
        seen_b = np.isfinite(b[(f, pid)].keypoints).all(1) if (f, pid) in b else np.zeros(NUM_JOINTS, bool)
        lost = seen_a & ~seen_b
        assert not (seen_b & ~seen_a).any()
        if not lost.any():
            continue
        lost_joints += lost.sum()
        cam, t = cams[frames[f].camera], np.array([frames[f].stamp_ns * 1e-9])
        X = clear.truth(t)[:, 0]                                                # (P, 17, 3)
        depth = cam.to_camera(X[:, PELVIS])[:, 2]
        uv = cam.project(X)
        nearer = [q for q in range(3) if depth[q] < depth[pid]]
        assert nearer, "the nearest person is never hidden"
        if (f, pid) not in b:                                  # too few joints left: not detected at all
            assert seen_b.sum() == 0 and (seen_a & ~lost).sum() == 0
            continue
        box = [(uv[q].min(0) - 0.1 * np.ptp(uv[q], 0), uv[q].max(0) + 0.1 * np.ptp(uv[q], 0)) for q in nearer]
        inside = np.any([((uv[pid] >= lo) & (uv[pid] <= hi)).all(1) for lo, hi in box], axis=0)
        assert inside[lost].all()
    assert lost_joints > 100                                                    # the crossings overlap in views


def test_single_person_scenes_repeat_the_same_draws(cams, schedule):
    s = scene(num_people=3, seed=4, false_detection_rate=0.2, occlusion_prob=0.0)
    frames, ids = s.observations_with_ids(cams, schedule)
    multi = detections_by_pid(frames, ids)
    singles = mp.single_person_scenes(s)
    assert [x.people[0].pid for x in singles] == [0, 1, 2] and all(x.num_people == 1 for x in singles)
    for k, single in enumerate(singles):
        f1, i1 = single.observations_with_ids(cams, schedule)
        one = detections_by_pid(f1, i1)
        assert set(one) == {key for key in multi if key[1] == k}
        assert all(np.array_equal(one[key].keypoints, multi[key].keypoints, equal_nan=True) for key in one)
        np.testing.assert_allclose(single.truth(np.array([1.0]))[0], s.truth(np.array([1.0]))[k])
        fakes = [sorted(p.score for p, pid in zip(f.people, i) if pid < 0) for f, i in zip(f1, i1)]
        assert fakes == [sorted(p.score for p, pid in zip(f.people, i) if pid < 0) for f, i in zip(frames, ids)]


def test_dropped_frames_are_not_delivered(cams):
    sch = schedules.interleaved(schedules.ScheduleConfig(drop_prob=0.3, seed=1), 4, 0.0, 2.0)
    frames = scene(num_people=2).observations(cams, sch)
    assert len(frames) == int((~sch.dropped).sum()) < len(sch)


def test_config_from_dict():
    cfg = mp.multi_person_from_dict({"num_people": 2, "crossing_distance_m": [0.5, 0.7], "seed": 3})
    assert cfg.num_people == 2 and cfg.crossing_distance_m == (0.5, 0.7)
    with pytest.raises(ValueError, match="unknown key"):
        mp.multi_person_from_dict({"people": 2})
    with pytest.raises(ValueError, match="below min_separation_m"):
        mp.MultiPersonConfig(crossing_distance_m=(0.4, 1.2))
    with pytest.raises(ValueError, match="unknown clip"):
        mp.MultiPersonConfig(clips=("moonwalk",))
    with pytest.raises(ValueError, match="no paths"):
        mp.make_scene(mp.MultiPersonConfig(num_people=5, area_radius_m=0.8, min_separation_m=0.9,
                                           crossing_distance_m=(0.4, 0.8)))
