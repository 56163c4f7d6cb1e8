#!/usr/bin/env bash
# The GPU check's offline proof (docs/gpu_check.md, section 5): the lent GPU machine's Python side reproduced on
# a CPU machine, then the wheel folder installed and the check's CPU-side path run with no network.
#
#   bash tools/gpu_check_proof.sh [PROOF_DIR]        # default /tmp/gpu_check_proof; about 20-90 minutes on 2 cores
#
# Needs: a CPython 3.12 (PYTHON312, default: pyenv's newest 3.12), the project environment (.venv, for
# --make-wheels), PyPI for the first two steps only, and `unshare` (root) to take the network away for the rest.
# Every step after the folder is made runs as on the GPU machine: `python3 FOLDER/gpu_check.py --wheels FOLDER`.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-/tmp/gpu_check_proof}"
PYTHON312="${PYTHON312:-$(ls -d /root/.pyenv/versions/3.12.*/bin/python 2>/dev/null | sort -V | tail -1)}"
V="$DIR/venv/bin/python"
mkdir -p "$DIR"
stamp() { echo "[proof $(date +%T)] $*"; }

# 1. the machine's packages (KINDS.md): torch 2.11.0 from PyPI (its +cu130 build, as there; it runs on a CPU)
if [ ! -x "$V" ]; then
  stamp "making $DIR/venv with $PYTHON312"
  "$PYTHON312" -m venv "$DIR/venv"
  "$V" -m pip install -q --upgrade pip
  "$V" -m pip install -q 'torch===2.11.0' 'torchvision===0.26.0' timm numpy opencv-python-headless scipy onnx \
    onnxruntime onnxscript pytest pytest-xdist pillow pyyaml matplotlib packaging rich tqdm regex requests \
    setuptools wheel ninja cython tabulate psutil six python-dateutil pyparsing pygments safetensors \
    huggingface-hub pandas
fi

# 2. the folder, made here in the project environment
stamp "making the folder"
rm -rf "$DIR/gpu_wheels"
"$REPO/.venv/bin/python" "$REPO/tools/gpu_check.py" --make-wheels "$DIR/gpu_wheels"
ls -l "$DIR/gpu_wheels"

# 3. no network from here on: a fresh install from the folder, the mmcv CPU-ops build from its sdist, the checks,
#    the tiny twin of every recipe (run outside the checkout, so the folder's project wheel is what runs)
"$V" -m pip uninstall -y -q mmengine mmdet mmsegmentation pycocotools shapely addict yapf platformdirs termcolor \
  terminaltables prettytable wcwidth ftfy mae-transfer mmcv mmcv-lite 2>/dev/null || true
NO_NET=""
if unshare -n true 2>/dev/null; then NO_NET="unshare -n"; else export PIP_NO_INDEX=1; fi
stamp "the CPU-side path, offline (${NO_NET:-PIP_NO_INDEX=1})"
cd /tmp
$NO_NET "$V" "$DIR/gpu_wheels/gpu_check.py" --wheels "$DIR/gpu_wheels" --cpu
stamp "done"
