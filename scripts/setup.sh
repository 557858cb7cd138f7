#!/usr/bin/env bash
# `make setup`: everything a fresh Debian 12 machine (Python 3.11, cmake, g++, Node.js/npm) needs,
# idempotent and cached: each step is skipped when its inputs have not changed since it last ran.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
py="${PYTHON:-python3}"
stamps=.ws/stamps
mkdir -p "$stamps" .cache
t0=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - t0)); }
# digest of the files a step depends on: the step reruns when it changes
digest() { find "$@" -type f -not -name '*.pyc' -print0 2>/dev/null | sort -z | xargs -0 cat | sha256sum | cut -c1-16; }
fresh() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }

step "python venv (.venv)"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
key=$(digest scripts/requirements.txt)
if ! fresh pip "$key"; then
  # (grep: this machine's pip config lists local index folders that may be absent; quiet them)
  .venv/bin/python -m pip install -q --progress-bar off -r scripts/requirements.txt 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  echo "$key" > "$stamps/pip"
else
  echo "up to date"
fi

# shellcheck disable=SC1091
. scripts/env.sh
mkdir -p "$ROS_LOG_DIR"
colcon_build() {  # colcon_build <package path> ...
  colcon --log-base .ws/log build --build-base .ws/build --install-base .ws/install \
    --merge-install --paths "$@" \
    --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
    -DCMAKE_PROJECT_INCLUDE="$repo/scripts/cmake/wheel_underlay_fix.cmake" \
    || { echo "colcon build failed; its logs:"; tail -n 60 .ws/log/latest_build/*/stdout_stderr.log; return 1; }
}

step "TFMessage interface for the TF fallback"
if python -c "import tf2_msgs.msg" 2>/dev/null && [ ! -f "$stamps/tf2_msgs" ]; then
  echo "tf2_msgs is installed: no fallback needed"
else
  key=$(digest scripts/tf2_msgs_fallback scripts/cmake)
  if ! fresh tf2_msgs "$key"; then
    colcon_build scripts/tf2_msgs_fallback
    echo "$key" > "$stamps/tf2_msgs"
  else
    echo "up to date"
  fi
fi

step "colcon build dense_warper_ros (messages + install tree)"
key=$(digest package.xml CMakeLists.txt msg scripts/ros scripts/cmake)
if ! fresh build "$key"; then
  # Built from a staged copy in .ws/src, as in a user's workspace: CMake refuses exported include
  # paths inside the source tree, and .venv (numpy's headers) is inside this checkout.
  src=.ws/src/dense_warper_ros
  rm -rf "$src" && mkdir -p "$src/scripts" models
  cp -r package.xml CMakeLists.txt msg dense_warper_ros launch config models "$src/"
  cp -r scripts/ros "$src/scripts/"
  find "$src" -name __pycache__ -prune -exec rm -rf {} +
  . scripts/env.sh
  colcon_build "$src"
  echo "$key" > "$stamps/build"
else
  echo "up to date"
fi
. scripts/env.sh

for fetch in scripts/fetch_movenet.py scripts/fetch_pose2sim.py; do
  if [ -f "$fetch" ]; then
    step "assets: $fetch"
    python "$fetch"
  fi
done

step "ONNX export of MoveNet (thunder, lightning, multipose) for ONNX Runtime (scripts/export_onnx.py)"
# keyed on the weights, the exported files and the export code (the modules exported included): deleting
# or altering a file reruns it (the globs take movenet_multipose.* too)
onnx_key() {
  digest scripts/export_onnx.py dense_warper_ros/backbones/onnx_runtime.py dense_warper_ros/backbones/movenet.py \
    dense_warper_ros/backbones/movenet_multipose.py \
    $(ls models/movenet_*.safetensors models/movenet_*.onnx models/movenet_*.onnx.json 2>/dev/null || true)
}
if ! fresh onnx "$(onnx_key)"; then
  python scripts/export_onnx.py
  onnx_key > "$stamps/onnx"
else
  echo "up to date"
fi

step "TF.js reference for the MoveNet parity test (Node.js)"
if command -v node >/dev/null && command -v npm >/dev/null; then
  bash scripts/install_tfjs_reference.sh
else
  echo "node/npm absent: the parity test will skip"
fi

step "done"
python - <<'PY'
import torch, rclpy, cv2
from dense_warper_ros.msg import Skeleton3DArray
print(f"torch {torch.__version__}, opencv {cv2.__version__}, rclpy ok, messages ok")
PY
echo "setup finished in $((SECONDS - t0)) s; use: source scripts/env.sh"
