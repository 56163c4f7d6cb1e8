#!/usr/bin/env bash
# Distributed evaluation with torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test options]
# A wrapper of `mae-transfer dist-test` (mae_transfer/tools/dist_test.py, which an installed wheel has too).
# On a CPU-only machine the processes use the gloo backend. NNODES, NODE_RANK, MASTER_ADDR and PORT select a
# multi-node run.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m mae_transfer.cli dist-test "$CONFIG" "$CHECKPOINT" "$NPROC" "$@"
