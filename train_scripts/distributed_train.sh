#!/usr/bin/env bash
# Multi-GPU training with timm's train.py and torchrun, keeping a recipe's global batch (and so its learning rate).
#
#   TIMM_TRAIN_PY=/path/to/pytorch-image-models/train.py \
#     train_scripts/distributed_train.sh NUM_GPUS RECIPE.yaml [train.py args...]
#
# Multi-node: set NNODES, NODE_RANK and MASTER_ADDR (and optionally MASTER_PORT) on every node; NUM_GPUS is per node.
#
# The rule: the global batch stays GLOBAL_BATCH (default: the recipe's batch_size, the paper's batch) and each
# process gets GLOBAL_BATCH / (NNODES * NUM_GPUS); the recipes leave lr unset, so train.py derives
# lr = lr_base * global batch / lr_base_size, which is the paper's lr at the paper's batch. Raising GLOBAL_BATCH
# scales the lr linearly. A global batch that does not divide evenly over the processes is refused.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: TIMM_TRAIN_PY=.../train.py $0 NUM_GPUS RECIPE.yaml [train.py args...]" >&2
  exit 2
fi
NUM_GPUS=$1
RECIPE=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

if [[ -z "${TIMM_TRAIN_PY:-}" || ! -f "${TIMM_TRAIN_PY}" ]]; then
  echo "error: set TIMM_TRAIN_PY to timm's train.py (it is not in the timm wheel; it is in a" \
       "pytorch-image-models checkout). Without one, use 'timm-ignore train' on one device." >&2
  exit 2
fi
if [[ ! -f "$RECIPE" ]]; then
  echo "error: recipe $RECIPE not found" >&2
  exit 2
fi
if [[ ! "$NUM_GPUS" =~ ^[1-9][0-9]*$ || ! "$NNODES" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: NUM_GPUS ($NUM_GPUS) and NNODES ($NNODES) must be positive integers" >&2
  exit 2
fi

WORLD_SIZE=$((NNODES * NUM_GPUS))
if [[ -z "${GLOBAL_BATCH:-}" ]]; then
  GLOBAL_BATCH=$(python -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["batch_size"])' "$RECIPE")
fi
if (( GLOBAL_BATCH % WORLD_SIZE != 0 )); then
  echo "error: global batch $GLOBAL_BATCH does not divide over $WORLD_SIZE processes;" \
       "set GLOBAL_BATCH to a multiple of $WORLD_SIZE" >&2
  exit 2
fi
PER_GPU_BATCH=$((GLOBAL_BATCH / WORLD_SIZE))
echo "global batch $GLOBAL_BATCH = $WORLD_SIZE processes x $PER_GPU_BATCH; lr follows lr_base * $GLOBAL_BATCH / lr_base_size"

exec torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NUM_GPUS" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
  "$TIMM_TRAIN_PY" --config "$RECIPE" --batch-size "$PER_GPU_BATCH" "$@"
