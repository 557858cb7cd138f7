"""MoveNet through ONNX Runtime: the ONNX export, its freshness check, and the runner `Backbone2D` and
`MultiPoseDetector` call.

Why: on a small CPU the 2D network is most of the per-frame cost, and ONNX Runtime's fused kernels run
MoveNet faster than eager torch at the same thread count (`bench/backbone_speed.py --inference torch
onnxruntime` measures both in one run). Only the network moves: cropping, decoding and the COCO ->
H36M mapping stay in torch, so both backends share every line after the heads.

The models (`ONNX_MODELS`): the single-pose variants (thunder, lightning; `MoveNet`, 4 heads) and
`multipose` (`MoveNetMultiPose`, 6 heads: the 4 + box_scale, box_offset; its decoder stays in torch).
One code path serves all: a model's `OnnxSpec` names its safetensors, its loader and its heads.

The setting `inference` (node parameter, `build_pipeline(inference=...)`):
  torch        the PyTorch module;
  onnxruntime  ONNX Runtime on `models/movenet_<name>.onnx`: CPUExecutionProvider on the CPU,
               CUDAExecutionProvider on CUDA (when that onnxruntime build has it; else torch on CUDA,
               with a warning). A missing package, a missing file or a file exported from other
               weights is an error that says what to run;
  auto         onnxruntime when it imports, has the device's provider and the ONNX file matches the
               weights' digest; torch otherwise (the reason is in `Backbone2D.inference`,
               `MultiPoseDetector.inference`).

The file (`export_movenet_onnx`, run by `make setup` through scripts/export_onnx.py): the heads of the
module's `forward` (what its `decode` consumes), opset 17, dynamic batch, the graph's own input side,
exported by the TorchScript exporter (`dynamo=False`: the torch.export-based one has no opset-17 form of
Pad and writes opset 18). The same weights give the same bytes. Beside it `movenet_<name>.onnx.json`
records the file's sha256 and the sha256 of the safetensors it came from: a re-converted MoveNet makes
the file stale.
An ONNX file is data: ONNX Runtime loads its graph and weights and runs no code from it.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..provenance import file_sha256
from .movenet import VARIANTS, MoveNet, MoveNetOutput, load_movenet, weights_paths

if TYPE_CHECKING:
    from .movenet_multipose import MoveNetMultiPose

INFERENCE_CHOICES = ("auto", "torch", "onnxruntime")
OPSET = 17
ONNX_FORMAT = "dense_warper_ros.movenet_onnx/1"   # bumped when the export changes: files are redone
INPUT_NAME = "images"
OUTPUT_NAMES = MoveNetOutput._fields               # single-pose: heatmaps, centre, regress, offsets
EXPORT_COMMAND = "`make setup` (or `python scripts/export_onnx.py`)"
# what each head holds, for the metadata json (beside its shape (B, C, h, h))
_HEAD_DOC = {
    "heatmaps": "sigmoid, COCO-17",
    "centre": "sigmoid",
    "regress": "cells (dy, dx) per joint",
    "offsets": "cells (dy, dx) per joint",
    "box_scale": "cells (height, width)",
    "box_offset": "cells (dy, dx)",
}


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnnxSpec:
    """What the export, the freshness check and the runner need to know of one model."""

    name: str                                             # movenet_<name>.onnx
    safetensors: Callable[[Path | None], Path]            # models_dir -> the weights file
    load: Callable[[Path | None], nn.Module]              # models_dir -> the float32 CPU module
    outputs: type                                         # the NamedTuple its forward returns


def _single_pose(variant: str) -> OnnxSpec:
    return OnnxSpec(variant, lambda d: weights_paths(variant, d)[0],
                    lambda d: load_movenet(variant, models_dir=d), MoveNetOutput)


MULTIPOSE = "multipose"                             # movenet_multipose.NAME
ONNX_MODELS = (*VARIANTS, MULTIPOSE)                # what scripts/export_onnx.py exports


@functools.cache
def _specs() -> dict[str, OnnxSpec]:
    # imported here, not at the top: movenet_multipose imports adapter, which imports this module
    from . import movenet_multipose as mp
    multi = OnnxSpec(MULTIPOSE, lambda d: mp.weights_paths(d)[0], mp.load_multipose,
                     mp.MultiPoseOutput)
    return {**{v: _single_pose(v) for v in VARIANTS}, MULTIPOSE: multi}


def onnx_spec(name: str) -> OnnxSpec:
    """The `OnnxSpec` of a model in `ONNX_MODELS`."""
    if name not in ONNX_MODELS:
        raise ValueError(f"no ONNX export for {name!r}, expected one of {ONNX_MODELS}")
    return _specs()[name]


def output_names(name: str) -> tuple[str, ...]:
    """The heads of a model's ONNX file, in order (its forward's NamedTuple fields)."""
    return onnx_spec(name).outputs._fields


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def onnx_paths(variant: str, models_dir: Path | None = None) -> tuple[Path, Path]:
    """(onnx, metadata json) of a model (`ONNX_MODELS`), beside its safetensors."""
    st = onnx_spec(variant).safetensors(models_dir)
    return st.with_suffix(".onnx"), st.with_suffix(".onnx.json")


def onnx_problem(variant: str, models_dir: Path | None = None) -> str | None:
    """None when the model's ONNX file is usable, else why not (missing, stale, altered)."""
    st = onnx_spec(variant).safetensors(models_dir)
    path, meta_path = onnx_paths(variant, models_dir)
    if not path.exists() or not meta_path.exists():
        missing = path if not path.exists() else meta_path
        return f"{missing} not found: run {EXPORT_COMMAND}"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return f"{meta_path} is unreadable ({e}): run {EXPORT_COMMAND}"
    if meta.get("format") != ONNX_FORMAT:
        return f"{path} has export format {meta.get('format')!r}, not {ONNX_FORMAT!r}: run {EXPORT_COMMAND}"
    if not st.exists():
        return f"{st} (the weights the ONNX file must match) not found: run {EXPORT_COMMAND}"
    source, current = meta.get("source", {}).get("sha256"), file_sha256(st)
    if source != current:
        return (f"{path} was exported from other weights (source sha256 {str(source)[:12]}..., "
                f"{st.name} is {current[:12]}...): run {EXPORT_COMMAND}")
    if meta.get("sha256") != file_sha256(path):
        return f"{path} does not match the sha256 in {meta_path.name}: run {EXPORT_COMMAND}"
    return None


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
class _Heads(nn.Module):
    """The module with its output as a plain tuple (the exporter names tuple entries)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model(images))


def export_bytes(model: MoveNet | MoveNetMultiPose) -> bytes:
    """The ONNX file of `model` (float32, CPU): input `images` (B, 3, S, S) RGB in [0, 255], S the
    graph's input side; outputs the heads of its forward, named as its fields (`output_names`), each
    (B, C, S/4, S/4); B dynamic."""
    names = output_names(model.config.name)
    model = _cpu_float32_copy(model)
    S = model.input_size
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation notice and the tracer's note on the input-shape check
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Heads(model), (torch.zeros(1, 3, S, S),), buf, dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=list(names), do_constant_folding=True,
            dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *names)},
            training=torch.onnx.TrainingMode.EVAL)
    return buf.getvalue()


def _cpu_float32_copy(model: nn.Module) -> nn.Module:
    """A float32 CPU copy in eval mode: the export must not depend on where the caller's model runs."""
    copy = type(model)(model.config)
    copy.load_state_dict({k: v.detach().float().cpu() for k, v in model.state_dict().items()})
    return copy.eval()


def export_movenet_onnx(variant: str, models_dir: Path | None = None) -> Path:
    """Export models/movenet_<name>.onnx (`ONNX_MODELS`) from its safetensors and write the metadata
    json beside it.

    Checks before writing: the graph passes `onnx.checker`, declares opset 17, and ONNX Runtime's heads
    equal torch's within 1e-4 on a fixed input. Returns the ONNX path.
    """
    import onnx

    from dense_warper_ros.weights import written_atomically
    spec = onnx_spec(variant)
    st = spec.safetensors(models_dir)
    model = spec.load(models_dir)
    data = export_bytes(model)
    _check_graph(data)
    _check_parity(model, data)
    path, meta_path = onnx_paths(variant, models_dir)
    with written_atomically(path) as tmp:
        tmp.write_bytes(data)
    path.chmod(0o644)
    S, h = model.input_size, model.config.heatmap_size
    with torch.no_grad():
        channels = [int(o.shape[1]) for o in model(torch.zeros(1, 3, S, S))]
    meta = {
        "format": ONNX_FORMAT,
        "variant": variant,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": OPSET,
        "batch": "dynamic",
        "input": {INPUT_NAME: f"(B, 3, {S}, {S}) float32 RGB in [0, 255]"},
        "outputs": {n: f"(B, {c}, {h}, {h}) {_HEAD_DOC[n]}" for n, c in zip(spec.outputs._fields, channels)},
        "source": {"file": st.name, "sha256": file_sha256(st)},
        "exporter": f"torch.onnx.export (TorchScript exporter) torch {torch.__version__}, onnx {onnx.__version__}",
        "made_by": "scripts/export_onnx.py -> dense_warper_ros.backbones.onnx_runtime.export_movenet_onnx",
    }
    with written_atomically(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def _check_graph(data: bytes) -> None:
    import onnx
    proto = onnx.load_model_from_string(data)
    onnx.checker.check_model(proto)
    opsets = {o.domain: o.version for o in proto.opset_import}
    if opsets.get("", opsets.get("ai.onnx")) != OPSET:
        raise ValueError(f"exported graph declares opsets {opsets}, expected ai.onnx {OPSET}")


def _check_parity(model: nn.Module, data: bytes, tol: float = 1e-4) -> None:
    """ONNX Runtime on the exported bytes vs the torch module, on a fixed pseudo-random image batch:
    max abs difference <= tol x max(1, max |torch|) per head (the sigmoid heads are within [0, 1]; the
    regression heads reach tens of cells, where float32 sums differ in the 6th digit)."""
    S = model.input_size
    x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (2, 3, S, S)).astype(np.float32))
    runner = OrtMoveNet(data, device=torch.device("cpu"), threads=1)
    with torch.inference_mode():
        ours, ref = runner(x), _cpu_float32_copy(model)(x)   # the module that was exported
    if type(ours) is not type(ref):
        raise ValueError(f"exported {model.config.name}: heads {ours._fields}, torch gives {ref._fields}")
    for name, a, b in zip(ref._fields, ours, ref):
        err, scale = float((a - b).abs().max()), max(1.0, float(b.abs().max()))
        if not err <= tol * scale:
            raise ValueError(f"exported {model.config.name} {name}: ONNX Runtime differs from torch by {err:.2e} "
                             f"(limit {tol * scale:.1e})")


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------
def import_onnxruntime() -> tuple[ModuleType | None, str]:
    """(the onnxruntime module, '') or (None, why it does not import)."""
    try:
        import onnxruntime
    except ImportError as e:
        return None, str(e)
    return onnxruntime, ""


class OrtMoveNet:
    """Calls like the exported module: (B, 3, S, S) float32 tensor -> its output NamedTuple
    (`MoveNetOutput`, `MultiPoseOutput`: chosen by the file's output names) on the input's device.

    CPU: intra-op threads = `threads` (0 = ONNX Runtime's default, one per core), inter-op 1 (the
    graph is a chain), every graph optimisation. CUDA: IO binding on the torch tensors' memory,
    outputs allocated by torch, no host round trip.
    """

    def __init__(self, onnx_model: Path | bytes, *, device: torch.device, threads: int = 1) -> None:
        ort, why = import_onnxruntime()
        if ort is None:
            raise ImportError(f"onnxruntime does not import ({why})")
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = onnxruntime's default), got {threads}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3                                  # errors only
        self.device = torch.device(device)
        if self.device.type == "cuda":
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0})]
        else:
            providers = ["CPUExecutionProvider"]
        source = str(onnx_model) if isinstance(onnx_model, Path) else onnx_model
        self.session = ort.InferenceSession(source, sess_options=so, providers=providers)
        self.provider = self.session.get_providers()[0]
        if self.device.type == "cuda" and self.provider != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU when the CUDA libraries do not load
            raise RuntimeError(f"onnxruntime could not start the CUDAExecutionProvider on {self.device} "
                               f"(session providers: {self.session.get_providers()})")
        self.threads = int(threads)
        shape = self.session.get_inputs()[0].shape                  # ['batch', 3, S, S]
        self.input_size = int(shape[-1])
        outputs = self.session.get_outputs()                        # ['batch', C, h, w] each
        self.output_names = tuple(o.name for o in outputs)
        self._output_shapes = [tuple(int(d) for d in o.shape[1:]) for o in outputs]
        types = {s.outputs._fields: s.outputs for s in _specs().values()}
        if self.output_names not in types:
            raise ValueError(f"ONNX file outputs {self.output_names}: not a MoveNet export "
                             f"(expected one of {list(types)})")
        self.output_type = types[self.output_names]

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        S = self.input_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, S, S):
            raise ValueError(f"ONNX MoveNet expects (B, 3, {S}, {S}), got {tuple(images.shape)}")
        x = images.detach().float().contiguous()
        if self.device.type == "cuda":
            return self._run_cuda(x)
        outs = self.session.run(list(self.output_names), {INPUT_NAME: x.cpu().numpy()})
        return self.output_type(*(torch.from_numpy(o) for o in outs))

    def _run_cuda(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = x.to(self.device)
        B, idx = x.shape[0], self.device.index or 0
        outs = [torch.empty((B, *shape), device=self.device) for shape in self._output_shapes]
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", idx, np.float32, tuple(x.shape), x.data_ptr())
        for name, o in zip(self.output_names, outs):
            binding.bind_output(name, "cuda", idx, np.float32, tuple(o.shape), o.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()      # the input is written
        self.session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        return self.output_type(*outs)

    def describe(self) -> str:
        threads = "" if self.provider != "CPUExecutionProvider" else (
            f", {self.threads} thread(s)" if self.threads else ", default threads")
        return f"onnxruntime ({self.provider}{threads})"


def movenet_runner(inference: str, *, variant: str, device: torch.device, threads: int = 1,
                   models_dir: Path | None = None) -> tuple[OrtMoveNet | None, str]:
    """(runner, what runs) for the `inference` setting and a model of `ONNX_MODELS` (`variant`: thunder,
    lightning or multipose); runner None means the torch module.

    Rules (module doc): `torch` -> torch. `onnxruntime` -> ONNX Runtime, or an error naming what is
    missing (the package: ImportError; the file: FileNotFoundError; a stale file: ValueError); on CUDA
    without a working CUDAExecutionProvider, torch with a warning. `auto` -> ONNX Runtime when all of that is
    in place, else torch.
    """
    if inference not in INFERENCE_CHOICES:
        raise ValueError(f"inference must be one of {INFERENCE_CHOICES}, got {inference!r}")
    if inference == "torch":
        return None, "torch"
    explicit = inference == "onnxruntime"
    ort, why = import_onnxruntime()
    if ort is None:
        if explicit:
            raise ImportError(f"inference 'onnxruntime' asked for, but the onnxruntime package does not import "
                              f"({why}): install it (pinned in scripts/requirements.txt; `make setup`) or set "
                              f"inference to 'auto' or 'torch'")
        return None, "torch (auto: onnxruntime does not import)"
    device = torch.device(device)
    provider = "CUDAExecutionProvider" if device.type == "cuda" else "CPUExecutionProvider"
    if provider not in ort.get_available_providers():
        reason = (f"onnxruntime {ort.__version__} has no {provider} (providers: {ort.get_available_providers()}; "
                  f"the onnxruntime-gpu build has it)")
        if explicit:
            warnings.warn(f"inference 'onnxruntime' on {device}: {reason}; running torch on {device}",
                          RuntimeWarning, stacklevel=2)
        return None, f"torch ({reason})"
    problem = onnx_problem(variant, models_dir)
    if problem is not None:
        if not explicit:
            return None, f"torch (auto: {problem})"
        missing = not all(p.exists() for p in onnx_paths(variant, models_dir))
        err = FileNotFoundError if missing else ValueError
        raise err(f"inference 'onnxruntime': {problem}")
    try:
        runner = OrtMoveNet(onnx_paths(variant, models_dir)[0], device=device, threads=threads)
    except RuntimeError as e:
        if device.type != "cuda":
            raise
        if explicit:
            warnings.warn(f"inference 'onnxruntime' on {device}: {e}; running torch on {device}",
                          RuntimeWarning, stacklevel=2)
        return None, f"torch ({e})"
    return runner, runner.describe()
