#!/usr/bin/env bash
# Train the candidates for the shipped default model side by side, on one GPU.
#
#   bash scripts/train_default_candidates.sh PHOTOS_DIR OUT_DIR [STEPS] [DEVICE] [ROUND]
#
# ROUND 1 compares size, crop, λ and the L2 twins; ROUND 2 (after round 1 picked
# wide-128) compares a longer schedule, soft targets, n = 64, no augmentation and
# a stronger rebalancing.
# PHOTOS_DIR is the open photo pool's train/ folder (colorunet data open-photos),
# or a packed copy of it (scripts/pack_photos.py). Every run: seed 0, batch 64,
# 10% of the photos held out for validation (the same photos in every run), bf16
# where the device has it. Runs go in parallel; each is stopped after TIME_LIMIT
# seconds if it has not finished (its last checkpoint's model.safetensors stays).
set -u
photos=$1; out=$2; steps=${3:-4000}; device=${4:-auto}; round=${5:-1}
TIME_LIMIT=${TIME_LIMIT:-400}
common=(--steps "$steps" --batch-size 64 --device "$device" --workers 2 --checkpoint-every 500 --val-every 500 --seed 0 -q)
run() {  # name, then options
    local name=$1; shift
    timeout "$TIME_LIMIT" python3 -m colorunet train "$photos" --out "$out/$name" "${common[@]}" "$@" \
        > "$out/$name.log" 2>&1
    echo "$name: exit $?" >> "$out/status.txt"
}
mkdir -p "$out"
if [ "$round" = 1 ]; then
    run paper-128 --preset paper --crop 128 &
    run wide-128 --preset wide --crop 128 &
    run wide-64 --preset wide --crop 64 &
    run wide-128-lambda0.8 --preset wide --crop 128 --lambda 0.8 &
    run wide-128-regression --preset wide --crop 128 --head regression &
    run paper-128-regression --preset paper-regression --crop 128 &
else
    run wide-128-long --preset wide --crop 128 --steps $((2 * steps)) &
    run wide-128-soft --preset wide --crop 128 --soft-targets &
    run wide-128-n64 --preset wide --crop 128 --classes 64 &
    run wide-128-noaug --preset wide --crop 128 --no-augment &
    run paper-128-noaug --preset paper --crop 128 --no-augment &
    run wide-128-lambda0.2 --preset wide --crop 128 --lambda 0.2 &
fi
wait
cat "$out/status.txt"
