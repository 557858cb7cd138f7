"""Training of DenseWarper's temporal warps (the method's stage 2: backbone frozen, warps train).

Modules: `loss` (the method's robust 2D loss and an optional 3D loss, pure functions), `windows`
(endless batches of synthetic interleaved windows in heatmap form), `data` (random rigs, schedules
and noise per batch for them, plus a fixed validation set), `loop` (the loop: progress, validation,
checkpoints with RNG state, exact --resume), `cli`
(`python -m dense_warper_ros.train --config config/train/lite.yaml --out out/train/<run>`).
"""
