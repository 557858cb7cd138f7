"""The multi-person benchmark CLI: its config, its failure analysis and a quick real run."""
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dense_warper_ros.data import multi_person as mp
from dense_warper_ros.eval import multi_person_bench as mpb

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "bench" / "multi_person.yaml"


def test_config_extends_default_and_checks_overrides(tmp_path):
    cfg = mpb.load_multi_config(CONFIG)
    assert cfg.base.rig.num_cameras == 4 and cfg.base.schedule.rate_hz == 60.0     # from default.yaml
    assert cfg.scene.duration_s == 4.0 and cfg.bench.people == (2, 3, 5) and len(cfg.bench.seeds) == 3
    assert mpb.quick(cfg).bench.seeds == cfg.bench.seeds[:1]
    assert mpb.quick(cfg).scene.duration_s == cfg.bench.quick_duration_s
    for extra in ("multi_pipeline: {gaet: 0.3}\n", "multi_pipeline: {buffer: 1}\n",
                  "tracking: {max_people: 9}\n", "multi_bench: {methods: [d]}\n", "multi_person: {num_peple: 2}\n"):
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"extends: {CONFIG}\n{extra}")
        with pytest.raises(ValueError):
            mpb.load_multi_config(bad)


def test_overrides_reach_the_pipeline(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text(f"extends: {CONFIG}\nmulti_pipeline: {{gate: 0.3, birth_views: 2}}\n"
                    "tracking: {timeout_ns: 200000000}\n")
    cfg = mpb.load_multi_config(path)
    pipe = mpb.make_pipeline(cfg, "b", "causal", 4, 3)
    assert pipe.config.gate == 0.3 and pipe.config.birth_views == 2
    assert pipe.tracks.config.timeout_ns == 200_000_000 and pipe.tracks.config.max_people == 3
    assert pipe.config.tracking == pipe.tracks.config


def test_failure_modes_counts_misses_ghosts_and_switches():
    scene = mp.make_scene(mp.MultiPersonConfig(num_people=2, duration_s=1.0, seed=3))
    stamps = np.arange(10, 60, 5) * 10_000_000                         # 10 instants, 0.1 .. 0.55 s
    truth = scene.truth(stamps * 1e-9)
    ghost = truth[0, 0] + np.array([3.0, 3.0, 0.0])                    # nobody stands there
    preds = [[(0 if t < 5 else 7, truth[0, t]), (9, ghost)] for t in range(len(stamps))]
    run = mpb.Run(stamps, preds, {}, 0.0)
    f = mpb.failure_modes(scene, run, 100.0, 500.0)
    assert f["missed"] == 10 and f["missed_by_person"] == [0, 10]       # person 1 never predicted
    assert f["ghost_predictions"] == 10 and len(f["switch_nearest_other_m"]) == 1
    assert f["no_pose"] == 10 and f["nan_joint_fraction"] == 0.0
    m = mpb.score(scene, run, mpb.MultiBenchConfig())
    assert m.recall[100.0] == pytest.approx(0.5) and m.id_switches == 1


def test_quick_run_writes_a_sane_report(tmp_path):
    out = tmp_path / "bench"
    assert mpb.main(["--config", str(CONFIG), "--people", "2", "--quick", "--out", str(out), "--threads", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "| scene | method | timing |" in (out / "summary.md").read_text()
    rows = report["rows"]
    assert {(r["method"], r["timing"]) for r in rows} == \
        {(m, t) for m in ("b", "c", "d+") for t in ("causal", "windowed")} | {("e", "synchronous")}
    for r in rows:
        assert r["people"] == 2 and r["num_truth"] > 100                 # 2 people x ~80 instants
        assert r["recall"]["100"] > 0.5 and 0 < r["precision"]["100"] <= 1, r
        assert isinstance(r["id_switches"], int) and 0 <= r["id_switches"] < 10
        assert len(r["person_mpjpe_mm"]) == 2 and 0 < r["mpjpe_mm"] < 150
        assert r["counts"]["births"] + r["counts"].get("reidentified", 0) >= 2 and r["counts"]["poses"] > 0
        assert {"missed", "no_pose", "ghost_predictions", "switch_nearest_other_m"} <= set(r["failures"])
        assert r["failures"]["no_pose"] <= r["failures"]["missed"] <= r["num_truth"]
        if r["method"] == "d+":                                           # the one-at-a-time reference
            assert len(r["single_person_mpjpe_mm"]) == 2 and 0 < r["single_mpjpe_mm"] < 150
            assert math.isfinite(r["ratio"]) and 0.5 < r["ratio"] < 3
        else:
            assert r["single_person_mpjpe_mm"] is None and r["ratio"] is None   # NaN -> null in JSON
    dplus = {r["timing"]: r for r in rows if r["method"] == "d+"}
    naive = {r["timing"]: r for r in rows if r["method"] == "b"}
    assert dplus["causal"]["mpjpe_mm"] < naive["causal"]["mpjpe_mm"]     # the warps help in a crowd too
    sync = next(r for r in rows if r["method"] == "e")                    # 4x the images: every view at once
    assert sync["mpjpe_mm"] < naive["windowed"]["mpjpe_mm"]
    assert [s["scene"] for s in report["summary"]] == ["2p, 1 seed"] * 7


def test_quick_never_lengthens_the_scene():
    cfg = mpb.load_multi_config(CONFIG)
    q = mpb.quick(dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, quick_duration_s=10.0)))
    assert q.scene.duration_s == cfg.scene.duration_s                  # never longer than the config's
