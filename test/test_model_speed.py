"""bench/model_speed.py times what the node runs: a weights file with its own config, and for
temporal-context models each view's earlier frames (the shipped lite_tc blends them in)."""
import importlib.util
import json
from pathlib import Path

import torch

from assets import require_shipped

REPO = Path(__file__).resolve().parents[1]
SHIPPED_TC = REPO / "models" / "dense_warper_lite_tc.safetensors"


def _model_speed():
    spec = importlib.util.spec_from_file_location("model_speed", REPO / "bench" / "model_speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_inputs_carry_history_and_the_shipped_file_uses_it():
    require_shipped(SHIPPED_TC)
    ms = _model_speed()
    model = ms.build_model(str(SHIPPED_TC), torch.device("cpu"), torch.float32)
    assert model.config.temporal_fusion                      # the file's config, not the preset's
    x = ms.make_inputs(model.config, torch.device("cpu"), torch.float32)
    K = model.config.temporal_context
    assert x["prev"].heatmaps.shape[:3] == (1, ms.V, K)
    assert (x["prev"].times < x["times"][..., None]).all()    # earlier frames of the same views
    with torch.no_grad():
        fused = ms.stage_functions(model, x)["fusion"]().points
        alone = model.pose_at(x["hm"], x["P"], x["A"], x["times"], x["valid"], x["times"][:, -1]).points
    assert torch.isfinite(fused).all()
    assert (fused - alone).norm(dim=-1).max() > 1e-4          # the history changes the pose
    assert ms.make_inputs(ms.ModelConfig.named("lite"), torch.device("cpu"), torch.float32)["prev"] is None


def test_cli_reports_a_weights_file_by_its_label(tmp_path):
    require_shipped(SHIPPED_TC)
    ms = _model_speed()
    out = tmp_path / "speed.json"
    assert ms.main(["--configs", str(SHIPPED_TC), "--devices", "cpu", "--threads", "1", "--rounds", "1",
                    "--budget-s", "0.02", "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {r["config"] for r in res["rows"]} == {"lite_tc*"}
    assert res["configs"]["lite_tc*"]["temporal_fusion"] is True
    assert {r["stage"] for r in res["rows"]} >= {"fusion", "window"}
