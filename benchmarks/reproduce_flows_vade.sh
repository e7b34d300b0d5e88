#!/usr/bin/env bash
# The planar-flow (Rezende & Mohamed 2015, Table 2) and VaDE (Jiang et al. 2017) runs
# behind the README's tables, at the budget given, resumable: run it again with the same
# RUNS directory and every finished step is skipped, every interrupted run resumed, and a larger budget
# continues the runs to it.
#
#   bash benchmarks/reproduce_flows_vade.sh RUNS [flows|vade|all]
#
# Budgets (environment): FLOW_EPOCHS (60), VADE_EPOCHS (20), VADE_PRETRAIN (10),
# VADE_SEEDS ("0 1 2"), EVAL_K (5000), EVAL_N (2000: a fixed random test subset).
set -euo pipefail
RUNS=${1:?give a directory for the runs, outside the repository}
WHAT=${2:-all}
FLOW_EPOCHS=${FLOW_EPOCHS:-60}
VADE_EPOCHS=${VADE_EPOCHS:-20}
VADE_PRETRAIN=${VADE_PRETRAIN:-10}
VADE_SEEDS=${VADE_SEEDS:-0 1 2}
EVAL_K=${EVAL_K:-5000}
EVAL_N=${EVAL_N:-2000}
PY=${PYTHON:-python}
mkdir -p "$RUNS"

source "$(cd "$(dirname "$0")" && pwd)/runs.sh"   # run, evaluate

if [ "$WHAT" = flows ] || [ "$WHAT" = all ]; then
  # One architecture for both: two ReLU layers of 400, Glorot initialization (the paper:
  # maxout layers of 400), z of 40, Adam 1e-3 (the paper: RMSprop 1e-5 for 500k updates,
  # too slow for this budget), batch 100, the KL annealed over the first 10^6 samples as
  # beta_t = min(1, t / 10^6) (the paper anneals the likelihood over 10^4 updates), one z
  # per example.
  COMMON=(--dataset binarized-mnist --hidden 400 400 --z-dim 40 --activation relu --init glorot
          --optimizer adam --lr 0.001 --weight-prior-std none --beta-warmup 1000000)
  run "$RUNS/flow-vae" "$FLOW_EPOCHS" --model vae "${COMMON[@]}"
  evaluate "$RUNS/flow-vae" --k "$EVAL_K" --n-test "$EVAL_N"
  run "$RUNS/flow-planar-flow" "$FLOW_EPOCHS" --model planar-flow --flow-length 10 "${COMMON[@]}"
  evaluate "$RUNS/flow-planar-flow" --k "$EVAL_K" --n-test "$EVAL_N"
fi

if [ "$WHAT" = vade ] || [ "$WHAT" = all ]; then
  for seed in $VADE_SEEDS; do
    run "$RUNS/vade-pooled-seed$seed" "$VADE_EPOCHS" --model vade --dataset mnist --seed "$seed" \
        --pretrain-epochs "$VADE_PRETRAIN"
    evaluate "$RUNS/vade-pooled-seed$seed" --cluster
  done
  # Trained on the 60,000 training images only, scored on the 10,000 test images.
  run "$RUNS/vade-heldout-seed0" "$VADE_EPOCHS" --model vade --dataset mnist --seed 0 \
      --no-pool-splits --pretrain-epochs "$VADE_PRETRAIN"
  evaluate "$RUNS/vade-heldout-seed0" --cluster
fi
