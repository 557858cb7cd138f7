"""The multi-person core without ROS: track prediction and life cycle, association costs and the
gate, births from agreeing views, and the pipeline's track bookkeeping on projected people."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dense_warper_ros import association as assoc
from dense_warper_ros.data.rigs import make_rig
from dense_warper_ros.people import Person2D, from_coco, person_affine, render_person
from dense_warper_ros.pipeline import PeopleOptions, build_pipeline
from dense_warper_ros.tracks import Track, TrackingConfig, TrackRegistry

from multi_person_rig import T0_NS, truth_at
from torch_threads import one_torch_thread  # noqa: F401

CAMS = make_rig()


def seen(X: np.ndarray, cam, noise: float = 0.0, rng=None) -> Person2D:
    uv = cam.project(X) + (0 if rng is None else rng.normal(0, noise, (17, 2)))
    return Person2D(keypoints=uv, scores=np.full(17, 0.9))


def test_prediction_is_constant_velocity_and_capped():
    t = Track(id=0, born_ns=0)
    X = truth_at(0.0)[0]
    t.update(0, X)
    t.update(100_000_000, X + [0.1, 0, 0])                       # 1 m/s along x
    np.testing.assert_allclose(t.predict(150_000_000), X + [0.15, 0, 0], atol=1e-9)
    np.testing.assert_allclose(t.predict(2_000_000_000), X + [0.25, 0, 0], atol=1e-9)   # held after 0.15 s


def test_fitted_draws_a_line_through_the_recent_poses():
    t = Track(id=0, born_ns=0)
    X = truth_at(0.0)[0]
    t.update(0, X)
    t.update(16_000_000, X + [0.016, 0, 0])
    np.testing.assert_allclose(t.fitted(32_000_000), t.predict(32_000_000))   # two poses: constant velocity
    jitter = [0.002, -0.002, -0.002, 0.002]                                     # about the line x = t m/s
    t = Track(id=0, born_ns=0)
    for k, e in enumerate(jitter):
        t.update(k * 16_000_000, X + [0.016 * k + e, 0, 0])
    np.testing.assert_allclose(t.fitted(64_000_000), X + [0.064, 0, 0], atol=1e-9)
    assert np.abs(t.predict(64_000_000) - X - [0.064, 0, 0]).max() > 0.003     # the last two alone: off


def test_tracks_end_after_the_timeout_and_a_returning_person_gets_the_id_back():
    reg = TrackRegistry(TrackingConfig(timeout_ns=500_000_000, reid_timeout_ns=3_000_000_000, reid_distance_m=0.6))
    a, b = truth_at(0.0)
    ta, tb = reg.birth(0, a), reg.birth(0, b)
    assert (ta.id, tb.id) == (0, 1) and reg.stats["births"] == 2
    ta.update(10, a)
    tb.update(10, b)
    assert reg.expire(400_000_000) == []
    assert sorted(reg.expire(600_000_000)) == [0, 1] and not reg.live
    back = reg.birth(1_000_000_000, b + [0.2, 0, 0])             # near where track 1 ended
    assert back.id == 1 and reg.stats["reidentified"] == 1
    far = reg.birth(1_000_000_000, a + [3.0, 0, 0])              # nowhere near track 0
    assert far.id == 2
    late = TrackRegistry(TrackingConfig(reid_timeout_ns=100))
    t = late.birth(0, a)
    t.update(10, a)
    late.end(t.id, 20)
    assert late.birth(10_000, a).id == 1                         # too late for re-identification


def test_a_stale_live_track_is_reacquired_by_a_birth_nearby():
    reg = TrackRegistry(TrackingConfig())
    a = truth_at(0.0)[0]
    t = reg.birth(0, a)
    t.update(1, a)
    assert reg.birth(300_000_000, a + [0.1, 0, 0]) is t and reg.stats["reacquired"] == 1


def test_duplicate_tracks_merge_into_the_older():
    reg = TrackRegistry(TrackingConfig())
    a = truth_at(0.0)[0]
    old, new = reg.birth(0, a), reg.birth(5, a + 0.01)
    assert reg.merge_duplicates({old.id: a, new.id: a + 0.01}, 10) == [new.id]
    assert list(reg.live) == [old.id] and reg.stats["merged"] == 1


def test_association_matches_each_person_to_its_track_and_gates_strangers():
    a, b = truth_at(0.5)
    cam = CAMS[1]
    people = [seen(b, cam), seen(a, cam), seen(a + [0, 0, 5.0], cam)]        # b, a, someone far above
    costs = assoc.cost_matrix([a, b], cam, people, 0.3)
    pairs, refused = assoc.match(costs, gate=0.25)
    assert sorted(pairs) == [(0, 1), (1, 0)] and refused == 0
    pairs, refused = assoc.match(assoc.cost_matrix([a + [0, 0, 5.0]], cam, people[:2], 0.3), gate=0.25)
    assert pairs == [] and refused == 1


def test_overlapping_crops_of_one_person_are_deduplicated():
    a, b = truth_at(0.5)
    p = seen(a, CAMS[0])
    twin = Person2D(keypoints=p.keypoints + 1.0, scores=p.scores * 0.9, score=0.5)
    kept = assoc.deduplicate([twin, p, seen(b, CAMS[0])], 0.3)
    assert len(kept) == 2 and kept[0] is p


def test_births_group_each_persons_views_and_never_pair_two_people():
    rng = np.random.default_rng(1)
    a, b = truth_at(0.3)
    cands = [assoc.Candidate(view=v, person=k, camera=c, observed=seen(X, c, 2.0, rng))
             for v, c in enumerate(CAMS) for k, X in enumerate((a, b))]
    groups = assoc.propose_births(cands, gate=0.12, min_score=0.3, min_joints=8)
    assert len(groups) == 2
    for group, X in groups:
        assert len(group) == len(CAMS) and len({c.person for c in group}) == 1
        truth = (a, b)[group[0].person]
        assert np.mean(np.linalg.norm(X - truth, axis=1)) < 0.03


def test_body_joints_drops_a_joint_out_of_reach():
    a = truth_at(0.0)[0].copy()
    a[13] += [3.0, 0, 0]                                         # a wrist triangulated across two people
    out = assoc.body_joints(a)
    assert np.isnan(out[13]).all() and np.isfinite(np.delete(out, 13, axis=0)).all()


def test_people_from_coco_and_their_rendered_heatmaps():
    coco = np.zeros((17, 2))
    coco[:, 0], coco[:, 1] = np.arange(17) * 5 + 100, np.arange(17) * 10 + 50
    p = from_coco(coco, np.full(17, 0.8))
    np.testing.assert_allclose(p.keypoints[0], (coco[11] + coco[12]) / 2)     # pelvis = mid-hips
    hm, A = render_person(p, 48, 2.5)
    assert hm.shape == (17, 48, 48) and float(hm.max()) == pytest.approx(0.8, abs=0.02)
    peak = np.unravel_index(int(torch.argmax(hm[9])), (48, 48))              # nose channel
    uv = A[:, :2] @ p.keypoints[9] + A[:, 2]
    assert abs(peak[1] - uv[0]) <= 1 and abs(peak[0] - uv[1]) <= 1
    assert render_person(Person2D(keypoints=np.full((17, 2), np.nan), scores=np.zeros(17)), 48, 2.5) is None


def _run(frames_people, max_people=4, **kw):
    pipe = build_pipeline(num_cameras=len(CAMS), timing="causal", device="cpu",
                          people=PeopleOptions(max_people=max_people, keypoints_input=True, **kw))
    out = []
    for k, people in enumerate(frames_people):
        c = k % len(CAMS)
        out += pipe.push_people(c, T0_NS + k * 16_666_667, people, CAMS[c])
    return pipe, out


def test_max_people_caps_the_tracks():
    a, b = truth_at(0.2)
    c = a + [0.0, 1.5, 0.0]
    frames = [[seen(X, CAMS[k % 4]) for X in (a, b, c)] for k in range(16)]
    pipe, out = _run(frames, max_people=2)
    assert len(pipe.tracks.live) == 2 and {r.track_id for r in out} == {0, 1}
    _, out3 = _run(frames, max_people=3)
    assert {r.track_id for r in out3} == {0, 1, 2}


def test_a_person_who_leaves_ends_the_track_and_comes_back_under_the_same_id():
    a, b = truth_at(0.2)
    both = [[seen(X, CAMS[k % 4]) for X in (a, b)] for k in range(12)]
    alone = [[seen(a, CAMS[k % 4])] for k in range(60)]              # 1 s without b: its track ends
    pipe, out = _run(both + alone + both)
    first = {r.track_id: r.points for r in out[:8]}
    b_id = min(first, key=lambda i: np.nanmean(np.linalg.norm(first[i] - b, axis=1)))
    assert pipe.ended == [b_id] and {r.track_id for r in out[-8:]} == {0, 1}
    assert pipe.people_counts()["reidentified"] == 1 and pipe.people_counts()["births"] == 2


def test_a_flood_of_people_in_one_frame_is_capped_and_counted():
    rng = np.random.default_rng(0)
    flood = [Person2D(keypoints=rng.uniform(0, 1000, (17, 2)), scores=np.full(17, 0.9), score=float(rng.random()))
             for _ in range(50)]
    pipe, _ = _run([flood], max_people=3)
    assert pipe.people_counts()["people_over_limit"] == 50 - (2 * 3 + 4)


def _lost_arm_frames(seconds: float = 1.0, rng_seed: int = 0) -> list[list[Person2D]]:
    """Two moving people; from 0.3 s on, cameras 0 and 1 lose the first person's right elbow and
    wrist (behind the other person, as the multi-person benchmark's occlusions do)."""
    rng = np.random.default_rng(rng_seed)
    frames = []
    for k in range(int(seconds * 60)):
        t, cam = k / 60, CAMS[k % 4]
        a, b = (seen(X, cam, 1.5, rng) for X in truth_at(t))
        if t >= 0.3 and k % 4 in (0, 1):
            kp, sc = a.keypoints.copy(), a.scores.copy()
            kp[ARM], sc[ARM] = np.nan, 0.0
            a = Person2D(keypoints=kp, scores=sc)
        frames.append([a, b])
    return frames


ARM = [15, 16]          # H36M right elbow, right wrist


def test_a_lost_joint_is_drawn_where_the_track_predicts_it():
    frames = _lost_arm_frames(0.5)
    pipe, _ = _run(frames[:-1])
    track = pipe.tracks.live[min(pipe.tracks.live)]
    k = len(frames) - 1
    lost, stamp = frames[k][0], T0_NS + k * 16_666_667
    predicted = track.fitted(stamp)
    A = person_affine(frames[k][1], 64, margin=3.0)            # a crop that holds both people
    hm = torch.zeros(17, 64, 64)
    filled = pipe._fill_lost(hm, A, lost, CAMS[k % 4], track, stamp)
    for j in range(17):
        if j in ARM:
            peak = divmod(int(filled[j].argmax()), 64)
            u, v = CAMS[k % 4].project(predicted[j]) @ A[:, :2].T + A[:, 2]
            assert abs(peak[1] - u) <= 1 and abs(peak[0] - v) <= 1
            assert filled[j].max() == pytest.approx(pipe.config.fill_lost, rel=0.05)
        else:
            assert filled[j].abs().max() == 0                  # seen joints keep their own heatmaps
    pipe.config = dataclasses.replace(pipe.config, fill_lost=0.0)
    assert pipe._fill_lost(hm, A, lost, CAMS[k % 4], track, stamp) is hm


def test_a_filled_joint_weighs_less_in_the_triangulation():
    """Where a view lost a joint, its DLT weight is capped at `fill_weight` (the heatmap holds the
    track's prediction, not a detection); the joints it sees are not capped."""
    frames = _lost_arm_frames(0.6)
    pipe = build_pipeline(num_cameras=len(CAMS), timing="causal", device="cpu",
                          people=PeopleOptions(max_people=4, keypoints_input=True))
    caps, pose_at = [], pipe.model.pose_at
    pipe.model.pose_at = lambda *a, **kw: (caps.append(kw.get("weight_cap")), pose_at(*a, **kw))[1]
    for k, people in enumerate(frames):
        c = k % len(CAMS)
        pipe.push_people(c, T0_NS + k * 16_666_667, people, CAMS[c])
    cap = caps[-1]                                            # (tracks, views, joints) of the last window
    assert cap is not None and cap.shape == (2, 4, 17)
    capped = torch.isfinite(cap)
    assert torch.all(cap[capped] == pipe.config.fill_weight)
    where = sorted({tuple(x) for x in capped.nonzero()[:, :2].tolist()})
    assert where in ([(0, 0), (0, 1)], [(1, 0), (1, 1)]), where   # one person, cameras 0 and 1
    for t, v in where:
        assert capped[t, v].nonzero().flatten().tolist() == ARM


def test_filling_lost_joints_from_the_track_brings_them_closer():
    """The shipped weights, two people, two of four cameras losing one person's right arm for
    0.7 s: the arm's 3D error is smaller with lost joints filled from the track than left empty."""
    frames = _lost_arm_frames()
    errors = {}
    for fill in (0.0, 0.4):
        _, out = _run(frames, fill_lost=fill)
        errs = []
        for r in out:
            t = (r.stamp_ns - T0_NS) * 1e-9
            a = truth_at(t)[0]
            if t >= 0.4 and np.nanmean(np.linalg.norm(r.points - a, axis=1)) < 0.2:
                errs.append(np.linalg.norm(r.points[ARM] - a[ARM], axis=1).mean() * 1000)
        errors[fill] = float(np.mean(errs))
        assert len(errs) >= 30
    assert errors[0.4] < errors[0.0]
