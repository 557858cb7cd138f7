"""Training of DenseWarper's temporal warps (the method's stage 2: backbone frozen, warps train).

Modules: `loss` (the method's robust 2D loss and an optional 3D loss, pure functions), `data`
(random rigs, schedules and augmented synthetic windows in heatmap form, plus a fixed validation
set), `loop` (the loop: progress, validation, checkpoints with RNG state, exact --resume), `cli`
(`python -m dense_warper_ros.train --config config/train/lite.yaml --out out/train/<run>`).
"""
