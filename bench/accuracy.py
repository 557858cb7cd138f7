#!/usr/bin/env python3
"""Accuracy benchmark: does DenseWarper beat the alternatives at the same camera budget?
See `dense_warper_ros.eval.accuracy`.

    python bench/accuracy.py [--config config/bench/default.yaml] [--quick] [--weights FILE | --untrained]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dense_warper_ros.eval.accuracy import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
