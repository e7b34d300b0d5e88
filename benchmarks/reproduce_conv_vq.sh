#!/usr/bin/env bash
# The conv-net and VQ-VAE runs behind the README's tables, at the budget given,
# resumable: run it again with the same RUNS directory and every finished step is
# skipped, every interrupted run resumed, and a larger budget continues the runs to it.
#
#   bash benchmarks/reproduce_conv_vq.sh RUNS [vq|chen|wang|all]
#
# Budgets (environment, in epochs): VQ_EPOCHS (30, the Keras example's), CHEN_EPOCHS (2;
# the thesis trains 20 on MNIST and Fashion-MNIST), WANG_EPOCHS (10).
set -euo pipefail
RUNS=${1:?give a directory for the runs, outside the repository}
WHAT=${2:-all}
VQ_EPOCHS=${VQ_EPOCHS:-30}
CHEN_EPOCHS=${CHEN_EPOCHS:-2}
WANG_EPOCHS=${WANG_EPOCHS:-10}
PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$RUNS"

source "$(cd "$(dirname "$0")" && pwd)/runs.sh"   # run, evaluate

if [ "$WHAT" = vq ] || [ "$WHAT" = all ]; then
  # The Keras VQ-VAE example: its nets, K = 128 codes of 16 on a 7 x 7 grid, beta 0.25,
  # Adam 1e-3, batch 128, the squared error over the data variance (all RUN_DEFAULTS of
  # --model vq-vae); the codebook by moving averages (decay 0.99), from encoder outputs.
  run "$RUNS/vq-keras" "$VQ_EPOCHS" --model vq-vae --dataset mnist
  evaluate "$RUNS/vq-keras" --codes --split train
  evaluate "$RUNS/vq-keras" --codes --split test
  # The same with an MLP (784-500-500 to 16 codes of 16).
  run "$RUNS/vq-mlp" "$VQ_EPOCHS" --model vq-vae --dataset mnist --net mlp --hidden 500 500
  evaluate "$RUNS/vq-mlp" --codes --split test
fi

if [ "$WHAT" = chen ] || [ "$WHAT" = all ]; then
  # The Chen thesis's FGVAEs: d = 20, the summed cross-entropy on grey levels, Adam 1e-3
  # with weight decay 1e-5 (a N(0, 1.29^2) weight prior scaled by 1/60000 adds the same
  # 1e-5 theta to the gradient), batch 128; FC 512-256-128 or CNN 32-64-128 (kernel 4,
  # stride 2, padding 1), batch norm and ReLU after every hidden layer.
  COMMON=(--hidden 512 256 128 --batch-norm --activation relu --optimizer adam --lr 0.001
          --batch-size 128 --z-dim 20 --likelihood bernoulli --no-binarize
          --weight-prior-std 1.29 --init glorot)
  for data in mnist fashion-mnist; do
    run "$RUNS/chen-fc-$data" "$CHEN_EPOCHS" --dataset "$data" "${COMMON[@]}"
    evaluate "$RUNS/chen-fc-$data" --k 1 --draws 10
    run "$RUNS/chen-cnn-$data" "$CHEN_EPOCHS" --dataset "$data" --net conv "${COMMON[@]}"
    evaluate "$RUNS/chen-cnn-$data" --k 1 --draws 10
  done
fi

if [ "$WHAT" = wang ] || [ "$WHAT" = all ]; then
  # Wang (2023)'s setup (grey pixels, summed cross-entropy, ReLU, N(0, 0.01^2)
  # initialization, Adagrad 0.01, batch 100, [500, 500, 3]) for the VAE, the beta-VAE
  # (beta 5) and the label CVAE, then the comparison figure with the VQ-VAE above.
  COMMON=(--dataset mnist --hidden 500 500 --z-dim 3 --activation relu --likelihood bernoulli
          --no-binarize --optimizer adagrad --lr 0.01 --batch-size 100 --init normal
          --init-std 0.01 --weight-prior-std none)
  run "$RUNS/wang-vae" "$WANG_EPOCHS" "${COMMON[@]}"
  run "$RUNS/wang-beta5" "$WANG_EPOCHS" "${COMMON[@]}" --beta 5
  run "$RUNS/wang-cvae" "$WANG_EPOCHS" "${COMMON[@]}" --model cvae
  if [ -f "$RUNS/vq-keras/checkpoint.npz" ]; then
    $PY "$HERE/compare_reconstructions.py" "$RUNS/wang_reconstructions.png" \
      "$RUNS/wang-vae=VAE" "$RUNS/wang-beta5=beta-VAE (beta 5)" "$RUNS/wang-cvae=CVAE" \
      "$RUNS/vq-keras=VQ-VAE"
  fi
fi
