# Two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh &&
# pytest workers: one per core by default (CI machines have 2)
JOBS ?= 2

.PHONY: setup build test demo bench train-paper clean

setup:  ## venv, ROS 2 wheels, colcon build of msg/, model assets (idempotent, cached)
	bash scripts/setup.sh

build: setup  ## the colcon build is part of setup; kept as a name ROS users look for

test: setup  ## the linter (ruff.toml), then the whole test suite
	$(ENV) ruff check . && python -m pytest -n $(JOBS) test

demo: setup  ## the main job on the bundled real recording
	$(ENV) python -m dense_warper_ros.ros.demo

bench: setup  ## speed and accuracy benchmarks (long)
	$(ENV) python bench/model_speed.py && python bench/accuracy.py

train-paper: setup  ## paper-sized warps on a CUDA GPU (config/train/paper.yaml; hours, not for CI)
	$(ENV) python -m dense_warper_ros.train --config config/train/paper.yaml --out out/train/paper

clean:
	rm -rf .ws out .pytest_cache
