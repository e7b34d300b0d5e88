#!/usr/bin/env bash
# The planar-flow (Rezende & Mohamed 2015, Table 2) and VaDE (Jiang et al. 2017) runs
# behind the README's tables, at the budget given, resumable: run it again with the same
# RUNS directory and every finished step is skipped, every interrupted run resumed.
#
#   bash benchmarks/reproduce_flows_vade.sh RUNS [flows|vade|all]
#
# Budgets (environment): FLOW_EPOCHS (15), VADE_EPOCHS (20), VADE_PRETRAIN (10),
# VADE_SEEDS ("0 1 2"), EVAL_K (5000), EVAL_N (2000: a fixed random test subset).
set -euo pipefail
RUNS=${1:?give a directory for the runs, outside the repository}
WHAT=${2:-all}
FLOW_EPOCHS=${FLOW_EPOCHS:-15}
VADE_EPOCHS=${VADE_EPOCHS:-20}
VADE_PRETRAIN=${VADE_PRETRAIN:-10}
VADE_SEEDS=${VADE_SEEDS:-0 1 2}
EVAL_K=${EVAL_K:-5000}
EVAL_N=${EVAL_N:-2000}
PY=${PYTHON:-python}
mkdir -p "$RUNS"

if [ "$WHAT" = flows ] || [ "$WHAT" = all ]; then
  # One architecture for both: two ReLU layers of 400, Glorot initialization (the paper:
  # maxout layers of 400),
  # z of 40, Adam 1e-3 (the paper: RMSprop 1e-5 for 500k updates, too slow for this budget),
  # batch 100, the likelihood annealed over the first 10^4 updates (10^6 samples) as
  # beta_t = min(1, t / 10^6 samples) on the KL, one z per example.
  COMMON=(--dataset binarized-mnist --hidden 400 400 --z-dim 40 --activation relu --init glorot
          --optimizer adam --lr 0.001 --weight-prior-std none --beta-warmup 1000000
          --epochs "$FLOW_EPOCHS")
  for model in vae planar-flow; do
    out="$RUNS/flow-$model"
    extra=(); [ "$model" = planar-flow ] && extra=(--flow-length 10)
    if [ ! -f "$out/.done" ]; then
      if [ -f "$out/checkpoint.npz" ]; then $PY -m numpyvae.train --resume "$out" 2>&1 | grep -E "^(Done|error)"
      else $PY -m numpyvae.train --out "$out" --model "$model" "${extra[@]}" "${COMMON[@]}" 2>&1 | grep -E "^(Done|error)"; fi
      touch "$out/.done"
    fi
    [ -f "$out/.evaluated" ] || { $PY -m numpyvae.evaluate "$out" --k "$EVAL_K" --n-test "$EVAL_N" 2>&1 | tail -4; touch "$out/.evaluated"; }
  done
fi

if [ "$WHAT" = vade ] || [ "$WHAT" = all ]; then
  for seed in $VADE_SEEDS; do
    out="$RUNS/vade-pooled-seed$seed"
    if [ ! -f "$out/.done" ]; then
      if [ -f "$out/checkpoint.npz" ]; then $PY -m numpyvae.train --resume "$out" 2>&1 | grep -E "^(Done|error)"
      else $PY -m numpyvae.train --out "$out" --model vade --dataset mnist --seed "$seed" \
             --pretrain-epochs "$VADE_PRETRAIN" --epochs "$VADE_EPOCHS" 2>&1 | grep -E "^(Done|Pretrained|error)"; fi
      touch "$out/.done"
    fi
    [ -f "$out/.evaluated" ] || { $PY -m numpyvae.evaluate "$out" --cluster 2>&1 | tail -3; touch "$out/.evaluated"; }
  done
  out="$RUNS/vade-heldout-seed0"      # trained on the 60,000 training images only
  if [ ! -f "$out/.done" ]; then
    if [ -f "$out/checkpoint.npz" ]; then $PY -m numpyvae.train --resume "$out" 2>&1 | grep -E "^(Done|error)"
    else $PY -m numpyvae.train --out "$out" --model vade --dataset mnist --seed 0 --no-pool-splits \
           --pretrain-epochs "$VADE_PRETRAIN" --epochs "$VADE_EPOCHS" 2>&1 | grep -E "^(Done|Pretrained|error)"; fi
    touch "$out/.done"
  fi
  [ -f "$out/.evaluated" ] || { $PY -m numpyvae.evaluate "$out" --cluster 2>&1 | tail -3; touch "$out/.evaluated"; }
fi
