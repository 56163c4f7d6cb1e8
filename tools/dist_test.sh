#!/usr/bin/env bash
# Distributed evaluation with torchrun: bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py options]
# On a CPU-only machine the processes use the gloo backend (set env_cfg.dist_cfg.backend=gloo, as the tiny
# configs do). NNODES, NODE_RANK, MASTER_ADDR and PORT select a multi-node run.
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
