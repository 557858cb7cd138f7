"""Stamp errors in the accuracy benchmark (cameras whose stamps are off, with drift) and their
correction by the clock-offset estimator; the estimator on jitter that is white between frames."""
import dataclasses

import numpy as np
import pytest

from dense_warper_ros.clock_offsets import ClockOffsetEstimator
from dense_warper_ros.data import detector_noise, motion, rigs, schedules
from dense_warper_ros.eval import accuracy, bench_config, metrics, sequences
from dense_warper_ros.eval.stamps import clock_correction, clock_table

OFFSETS = (0.0, 0.012, -0.006, 0.020)


def _cfg(**schedule) -> bench_config.AccuracyConfig:
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    return dataclasses.replace(cfg, noise=detector_noise.NoiseConfig.noiseless(),
                               schedule=dataclasses.replace(cfg.schedule, **schedule),
                               bench=dataclasses.replace(cfg.bench, clips=("walk", "spinkick"), methods=("b", "c")))


def test_stamp_errors_are_an_offset_plus_a_drift_per_camera():
    cfg = schedules.ScheduleConfig(stamp_offsets_s=(0.0, 0.01), stamp_drift_ppm=(0.0, 100.0))
    err = cfg.stamp_errors(np.array([0, 1, 1]), np.array([5.0, 0.0, 10.0]))
    np.testing.assert_allclose(err, [0.0, 0.01, 0.011])
    with pytest.raises(ValueError, match="stamp_offsets_s has 2 values for 3 cameras"):
        cfg.stamp_errors(np.array([0, 2]), np.zeros(2))
    np.testing.assert_array_equal(schedules.ScheduleConfig().stamp_errors(np.array([0, 3]), np.ones(2)), 0.0)


def test_the_methods_see_the_stamps_and_the_truth_stays_at_the_capture_times():
    exact = _cfg()
    off = _cfg(stamp_offsets_s=OFFSETS)
    a = sequences.synthetic_sequence("walk", exact, None, exact.heatmap)
    b = sequences.synthetic_sequence("walk", off, None, off.heatmap)
    np.testing.assert_array_equal(a.gt, b.gt)                         # truth at the capture times
    shift = b.targets - a.targets
    assert set(np.round(shift * 1e3, 6)) <= set(np.round(np.array(OFFSETS) * 1e3, 6))
    err = {k: metrics.mpjpe_root_aligned(r.outputs["c/windowed"].pred, r.gt) * 1e3 for k, r in (("a", a), ("b", b))}
    assert err["b"] > 1.5 * err["a"], err                             # wrong stamps cost (c) its motion model


def _all_clips(cfg: bench_config.AccuracyConfig) -> bench_config.AccuracyConfig:
    """Every held-out clip (about 11.5 s): an estimate corrects stamps only from 5 s of motion."""
    default = bench_config.load_config(accuracy.DEFAULT_CONFIG).bench.clips
    return dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, clips=default))


def test_corrected_stamps_give_back_the_exact_stamps_figures():
    cfg = _all_clips(dataclasses.replace(_cfg(stamp_offsets_s=OFFSETS),
                                         bench=dataclasses.replace(_cfg().bench, correct_stamps=True)))
    results, _ = sequences.run_synthetic(cfg, None, log=lambda s: None)
    clock = results[0].clock
    assert np.allclose(clock.true_ms, np.array(OFFSETS) * 1e3)
    assert np.abs(np.array(clock.estimated_ms) - clock.true_ms).max() < 0.5, clock
    assert all(clock.applied) and clock.seconds >= 5.0
    exact, _ = sequences.run_synthetic(_all_clips(_cfg()), None, log=lambda s: None)
    off, _ = sequences.run_synthetic(_all_clips(_cfg(stamp_offsets_s=OFFSETS)), None, log=lambda s: None)
    for r, e, o in zip(results, exact, off):
        got, want, bad = (metrics.mpjpe_root_aligned(x.outputs["c/windowed"].pred, x.gt) * 1e3 for x in (r, e, o))
        assert abs(got - want) < 0.25 * (bad - want), (r.name, got, want, bad)
    table = clock_table("clocks", clock)
    assert "+12.0" in table and "estimated from" in table


def test_white_jitter_does_not_pull_synchronised_cameras_half_a_frame_apart():
    """Interpolated jitter is smallest half-way between frames; an estimator that ignores that
    puts synchronised cameras' stamps there. 4 px of frame-to-frame independent jitter, 8 s."""
    clip = motion.load_clip("dance_b")
    cams = rigs.make_rig()
    t = np.arange(0.0, min(clip.duration, 8.0), 1 / 15)
    rng = np.random.default_rng(0)
    est = ClockOffsetEstimator(len(cams))
    for c, cam in enumerate(cams):
        uv = cam.project(clip.at(t), distort=False) + rng.normal(0, 4.0, (len(t), clip.at(t[:1]).shape[1], 2))
        for k, ti in enumerate(t):
            est.observe(c, int(round((ti + OFFSETS[c]) * 1e9)), 0, uv[k], np.ones(len(uv[k])), cam, pinhole=True)
    got = est.estimate()
    err = np.array([got[c].offset_s - OFFSETS[c] for c in range(len(cams))]) * 1e3
    assert np.abs(err).max() < 2.0, err
    assert all(got[c].sigma_s * 1e3 < 2.0 for c in (1, 2, 3))


def test_clock_correction_reports_without_estimating_when_only_asked_for_errors():
    cfg = _cfg(stamp_offsets_s=OFFSETS, stamp_drift_ppm=(0.0, 100.0, 0.0, 0.0))
    setup = sequences.synthetic_setup("walk", cfg, cfg.heatmap, None)
    correction, report = clock_correction(cfg, [setup.bank], [setup.rig_slots])
    np.testing.assert_array_equal(correction, 0.0)
    assert report.estimated_ms is None
    mean_t = setup.bank.time[setup.rig_slots][setup.bank.camera[setup.rig_slots] == 1].mean()
    assert report.true_ms[1] == pytest.approx(12.0 + 0.1 * mean_t, abs=1e-6)
