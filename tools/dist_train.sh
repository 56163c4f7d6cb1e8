#!/usr/bin/env bash
# Distributed training with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCESSES [train.py options]
# On a CPU-only machine the processes use the gloo backend (set env_cfg.dist_cfg.backend=gloo, as the tiny
# configs do). NNODES, NODE_RANK, MASTER_ADDR and PORT select a multi-node run.
# MAX_RESTARTS=N (default 0): when a process dies (killed, out of memory), torchrun restarts all of them, up to
# N times, and they resume from the last complete checkpoint of this run's work dir without --resume.
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
cd "$(dirname "$0")/.."
RENDEZVOUS=(--master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}")
if [ "${MAX_RESTARTS:-0}" -gt 0 ]; then
    # Restarts need the c10d rendezvous with a fresh store per attempt: the default static one, or a store shared
    # with the rendezvous, keeps the previous attempt's addresses and the restarted processes connect to the dead.
    RENDEZVOUS=(--rdzv-backend=c10d --rdzv-endpoint="${MASTER_ADDR:-127.0.0.1}:${PORT:-29500}")
    export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
fi
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" "${RENDEZVOUS[@]}" \
    --nproc_per_node="$NPROC" --max-restarts="${MAX_RESTARTS:-0}" \
    tools/train.py "$CONFIG" --launcher pytorch "$@"
