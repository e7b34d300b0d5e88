# Shell functions the reproduction scripts share (source it; PY names the interpreter).

# run OUT EPOCHS ARGS...: start the run, or resume it to EPOCHS (nothing to do once there).
run() {
  local out=$1 epochs=$2; shift 2
  if [ -f "$out/checkpoint.npz" ]; then
    $PY -m numpyvae.train --resume "$out" --epochs "$epochs" 2>&1 | grep -E "^(Done|error)" || true
  else
    $PY -m numpyvae.train --out "$out" --epochs "$epochs" "$@" 2>&1 | grep -E "^(Done|Pretrained|error)"
  fi
}

# evaluate OUT ARGS...: once per training budget reached and set of arguments (a marker
# file names both).
evaluate() {
  local out=$1; shift
  local seen marker
  seen=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['budget_samples'])" "$out/config.json")
  marker="$out/.evaluated-$seen$(printf '%s' "$*" | tr -c 'A-Za-z0-9.-' '_')"
  [ -f "$marker" ] && return 0
  $PY -m numpyvae.evaluate "$out" "$@" 2>&1 | tail -6 && touch "$marker"
}
