#!/usr/bin/env bash
# Distributed training with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCESSES [train options]
# A wrapper of `mae-transfer dist-train` (mae_transfer/tools/dist_train.py, which an installed wheel has too).
# On a CPU-only machine the processes use the gloo backend. NNODES, NODE_RANK, MASTER_ADDR and PORT select a
# multi-node run. MAX_RESTARTS=N (default 0): when a process dies (killed, out of memory), torchrun restarts all
# of them, up to N times, and they resume from the last complete checkpoint of this run's work dir.
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m mae_transfer.cli dist-train "$CONFIG" "$NPROC" --max-restarts "${MAX_RESTARTS:-0}" "$@"
