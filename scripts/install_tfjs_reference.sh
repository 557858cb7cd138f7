#!/usr/bin/env bash
# Install TF.js's pure-JS CPU runtime into .cache/tfjs: the reference that the MoveNet port is
# checked against (test/test_movenet_parity.py runs scripts/tfjs_reference.js with it).
# Pinned, no native code (no tfjs-node), idempotent. Usage: bash scripts/install_tfjs_reference.sh
set -euo pipefail
VERSION=4.22.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/tfjs"
PKGS=(tfjs-core tfjs-converter tfjs-backend-cpu)

installed() {
  for p in "${PKGS[@]}"; do
    local f="$DEST/node_modules/@tensorflow/$p/package.json"
    [[ -f "$f" ]] || return 1
    node -e "process.exit(require('$f').version === '$VERSION' ? 0 : 1)" || return 1
  done
}

command -v node >/dev/null || { echo "[tfjs] node not found: install Node.js to run the parity test" >&2; exit 1; }
if installed; then
  echo "[tfjs] @tensorflow/{${PKGS[*]}}@$VERSION present in .cache/tfjs"
  exit 0
fi
mkdir -p "$DEST"
[[ -f "$DEST/package.json" ]] || echo '{"name": "dense-warper-tfjs-reference", "private": true}' > "$DEST/package.json"
echo "[tfjs] npm install @tensorflow/{${PKGS[*]}}@$VERSION into .cache/tfjs"
SPECS=()
for p in "${PKGS[@]}"; do SPECS+=("@tensorflow/$p@$VERSION"); done
npm install --prefix "$DEST" --no-audit --no-fund --save-exact --loglevel=error "${SPECS[@]}"
installed || { echo "[tfjs] install failed" >&2; exit 1; }
echo "[tfjs] done"
