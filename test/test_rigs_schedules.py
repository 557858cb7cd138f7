"""Camera rigs (generator, preset, YAML) and capture schedules (interleaving, offsets, imperfections)."""
import numpy as np
import pytest

from dense_warper_ros.data import motion, rigs, schedules


def test_h36m_like_preset_looks_at_the_subject():
    cams = rigs.make_rig(rigs.H36M_LIKE)
    assert len(cams) == 4
    target = np.array([0.0, 0.0, rigs.H36M_LIKE.target_height_m])
    for cam in cams:
        assert np.hypot(*cam.centre[:2]) == pytest.approx(5.0)
        assert cam.centre[2] == pytest.approx(1.6)
        np.testing.assert_allclose(cam.project(target[None])[0], cam.K[:2, 2], atol=1e-9)
        # world up points up in the image (v decreases)
        assert cam.project((target + [0, 0, 0.5])[None])[0, 1] < cam.K[1, 2] - 50
        assert cam.K[0, 0] == 1145.0 and (cam.width, cam.height) == (1000, 1000)
    az = np.degrees(np.arctan2([c.centre[1] for c in cams], [c.centre[0] for c in cams])) % 360
    np.testing.assert_allclose(np.sort(az), [45, 135, 225, 315])


def test_every_held_out_clip_stays_in_every_image():
    cams = rigs.make_rig()
    for name in motion.TEST_CLIPS:
        X = motion.load_clip(name).key_joints
        for cam in cams:
            uv = cam.project(X)
            assert (uv > 0).all() and (uv < 1000).all(), (name, cam.name)


@pytest.mark.parametrize("n", [2, 3, 6, 8])
def test_ring_generator_spreads_n_cameras(n):
    cams = rigs.make_rig(rigs.RigConfig(num_cameras=n, radius_m=3.0, height_m=2.0, focal_px=800,
                                        width=640, height=480))
    assert len(cams) == n
    az = np.sort(np.degrees(np.arctan2([c.centre[1] for c in cams], [c.centre[0] for c in cams])) % 360)
    np.testing.assert_allclose(np.diff(az), 360 / n, atol=1e-9)
    assert all(c.width == 640 and c.height == 480 for c in cams)


@pytest.mark.parametrize("n", [1, 9])
def test_rig_size_is_checked(n):
    with pytest.raises(ValueError, match=f"got {n}"):
        rigs.RigConfig(num_cameras=n)


def test_rig_yaml_ring_explicit_and_extends(tmp_path):
    (tmp_path / "base.yaml").write_text("rig:\n  num_cameras: 3\n  radius_m: 4.0\nschedule:\n  rate_hz: 50\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nrig:\n  radius_m: 6.0\n")
    cfg = rigs.load_rig(tmp_path / "child.yaml")
    assert cfg.num_cameras == 3 and cfg.radius_m == 6.0
    data = rigs.read_yaml(tmp_path / "child.yaml")
    assert data["schedule"]["rate_hz"] == 50
    (tmp_path / "explicit.yaml").write_text(
        "rig:\n  cameras:\n"
        "    - {name: a, centre: [4, 0, 1.5], look_at: [0, 0, 1], focal_px: 900, width: 800, height: 600}\n"
        "    - {name: b, centre: [0, 4, 1.5], look_at: [0, 0, 1], focal_px: 900, width: 800, height: 600}\n")
    cams = rigs.make_rig(rigs.load_rig(tmp_path / "explicit.yaml"))
    assert [c.name for c in cams] == ["a", "b"]
    np.testing.assert_allclose(cams[1].project(np.array([[0, 0, 1.0]]))[0], [399.5, 299.5])
    (tmp_path / "bad.yaml").write_text("rig:\n  radius: 3\n")
    with pytest.raises(ValueError, match="radius"):
        rigs.load_rig(tmp_path / "bad.yaml")
    (tmp_path / "badtype.yaml").write_text("rig:\n  num_cameras: four\n")
    with pytest.raises(ValueError, match="four"):
        rigs.load_rig(tmp_path / "badtype.yaml")


def test_default_schedule_really_interleaves():
    R, N = 60.0, 4
    s = schedules.interleaved(schedules.ScheduleConfig(rate_hz=R), N, 0.0, 2.0)
    for c in range(N):
        t = s.camera_times(c)
        np.testing.assert_allclose(np.diff(t), N / R)                # each camera at R/N
        assert t[0] == pytest.approx(c / R)                          # offset c/R
    np.testing.assert_allclose(np.diff(s.nominal), 1 / R)            # the union: one frame per 1/R
    np.testing.assert_array_equal(s.camera[:8], [0, 1, 2, 3, 0, 1, 2, 3])
    np.testing.assert_array_equal(s.time, s.nominal)                 # no jitter by default
    assert not s.dropped.any()


def test_offsets_and_rates_as_asked():
    cfg = schedules.ScheduleConfig(rate_hz=60, camera_rates_hz=(30, 10, 10), offsets_s=(0.0, 0.004, 0.05))
    s = schedules.interleaved(cfg, 3, 1.0, 3.0)
    for c, (rate, off) in enumerate(zip((30, 10, 10), (0.0, 0.004, 0.05))):
        t = s.camera_times(c)
        np.testing.assert_allclose(np.diff(t), 1 / rate)
        assert t[0] == pytest.approx(1.0 + off)
    assert cfg.cycle_s(3) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="has 3 values for 4 cameras"):
        schedules.interleaved(cfg, 4, 0.0, 1.0)


def test_jitter_and_drops_are_per_slot_and_shared_between_schedules():
    cfg = schedules.ScheduleConfig(rate_hz=60, jitter_s=0.002, drop_prob=0.1, seed=3)
    inter = schedules.interleaved(cfg, 4, 0.0, 20.0)
    dense = schedules.synchronized_like(cfg, np.unique(inter.nominal), 4)
    j = inter.time - inter.nominal
    assert 0.0015 < j.std() < 0.0025 and np.abs(j).max() <= 3 * 0.002 + 1e-12
    assert 0.07 < inter.dropped.mean() < 0.13
    # the same (camera, nominal) slot gets the same real time and the same drop in both schedules
    key = {(c, round(n * 1e6)): (t, d) for c, n, t, d in zip(dense.camera, dense.nominal, dense.time, dense.dropped)}
    for c, n, t, d in zip(inter.camera, inter.nominal, inter.time, inter.dropped):
        assert key[(c, round(n * 1e6))] == (t, d)
    assert len(inter.received()) == (~inter.dropped).sum()
    other = schedules.interleaved(schedules.ScheduleConfig(rate_hz=60, jitter_s=0.002, seed=4), 4, 0.0, 20.0)
    assert not np.allclose(other.time, inter.time)


def test_schedule_config_errors_name_the_value():
    with pytest.raises(ValueError, match="-1"):
        schedules.ScheduleConfig(rate_hz=-1)
    with pytest.raises(ValueError, match="1.5"):
        schedules.ScheduleConfig(drop_prob=1.5)
    with pytest.raises(ValueError, match="unknown key"):
        schedules.schedule_from_dict({"rate": 60})
