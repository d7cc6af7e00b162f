#!/usr/bin/env bash
# Install everything the project and its tests need into ./.venv (and system packages via apt).
# Used by the README's first command and by CI (.ci/run), so both install the same way.
# A GPU user installs their CUDA build of torch (<= 2.13.0) into .venv first; it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng iproute2 chromium fonts-dejavu-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned resolve would pull a newer CUDA build (gigabytes).
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q torch==2.13.0
# cloud: s3fs for the object-store tests (a real S3 server, moto, on 127.0.0.1)
.venv/bin/python -m pip install -q -e ".[dev,score,cloud]"
# resemblyzer (speaker similarity) without its declared deps: `webrtcvad` compiles C (the score
# extra's webrtcvad-wheels provides the module) and `typing` is the standard library's.
.venv/bin/python -m pip install -q --no-deps resemblyzer==0.1.4
echo "setup: done ($(.venv/bin/python -c 'import torch, ray; print("torch", torch.__version__, "ray", ray.__version__)'))"
