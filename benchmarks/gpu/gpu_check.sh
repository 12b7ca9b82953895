#!/usr/bin/env bash
# The paper preset on a GPU, end to end, in about 8 minutes on one H100/H200-class GPU.
#
# Usage, from the repository root after `make install`:
#
#     bash benchmarks/gpu/gpu_check.sh [OUT]              # OUT defaults to /tmp/gpucheck; it must be new or empty
#     bash benchmarks/gpu/gpu_check.sh --cpu-smoke [OUT]  # the same steps, tiny, on the CPU (or GPU_CHECK_CPU_SMOKE=1)
#
# 1. Phantom cohorts at 1 mm (BraTS grid, 240x240x155): 24 training cases from four sites and 10 test cases from an
#    unseen fifth site (`gliomics phantom`).
# 2. `gliomics train --preset mgmtnet` (the paper's size, 128^3 patches, batch 2) for 240 optimizer steps on one GPU
#    in bf16: steps/s and peak GPU memory (train_summary.json), and the same network's step on random tensors
#    (no data loading), which tells whether training waited for the CPU's data pipeline.
# 3. With two or more GPUs (`nvidia-smi -L`), the same training on two ranks with
#    `torchrun --nproc_per_node=2 -m gliomics.train`: steps/s.
# 4. `gliomics predict` of the 10 test cases on the GPU in bf16 (seconds per case from each <case>.json), and of the
#    first 2 of them on the CPU in fp32 with the same weights: Dice between the two label maps and the largest
#    marker probability difference.
# 5. OUT/gpu_check.json (every figure), OUT/gpu_check.md (a markdown table for benchmarks/results/gpu.md, also printed),
#    OUT/machine/ (lscpu, nvidia-smi), OUT/logs/ (each step's output).
#
# Sizes can be changed through the environment: TRAIN_CASES, TEST_CASES, CPU_CASES, STEPS, LOADER_WORKERS (per
# rank; default: the cores less two, at most 12, shared between the ranks), PHANTOM_WORKERS, VENV (default .venv).
# The CPU prediction is the slow part: the paper preset's 128^3 window takes about 40 s on 2 cores in fp32, and a
# 1 mm phantom head is 8 windows.
set -euo pipefail
set -o errtrace   # the ERR trap below names the failed step from inside `stage` too

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=gpu
OUT=/tmp/gpucheck
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu-smoke) MODE=cpu-smoke ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) OUT=$1 ;;
    esac
    shift
done
if [ "${GPU_CHECK_CPU_SMOKE:-0}" = 1 ]; then MODE=cpu-smoke; fi

OUT=$(realpath -m "$OUT")
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
GLIOMICS="$VENV/bin/gliomics"
TORCHRUN="$VENV/bin/torchrun"
REPORT=benchmarks/gpu/gpu_check_report.py
for exe in "$PY" "$GLIOMICS" "$TORCHRUN"; do
    [ -x "$exe" ] || { echo "gpu_check.sh: $exe not found; run 'make install' first" >&2; exit 2; }
done
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
    echo "gpu_check.sh: $OUT is not empty; give a new or empty folder" >&2
    exit 2
fi

NPROC=$(nproc)
GPUS=0
if command -v nvidia-smi > /dev/null 2>&1; then
    GPUS=$(nvidia-smi -L 2> /dev/null | grep -c '^GPU' || true)
    if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
        VISIBLE=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c . || true)
        GPUS=$((VISIBLE < GPUS ? VISIBLE : GPUS))
    fi
fi

if [ "$MODE" = gpu ]; then
    if [ "$GPUS" -lt 1 ]; then
        echo "gpu_check.sh: nvidia-smi lists no GPU; on a machine without one run it with --cpu-smoke" >&2
        exit 2
    fi
    "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' || {
        echo "gpu_check.sh: nvidia-smi lists a GPU but torch cannot use it (a CPU-only torch build?)" >&2; exit 2; }
    TRAIN_CASES=${TRAIN_CASES:-24}
    TEST_CASES=${TEST_CASES:-10}
    CPU_CASES=${CPU_CASES:-2}
    STEPS=${STEPS:-240}
    SPACING=1
    PRESET=mgmtnet
    DEVICE=cuda
    TRAIN_PRECISION=bf16
    PRED_PRECISION=bf16
    SPARE=$((NPROC > 4 ? NPROC - 2 : NPROC))
    W1=${LOADER_WORKERS:-$((SPARE < 12 ? SPARE : 12))}
    W2=${LOADER_WORKERS:-$((SPARE / 2 < 12 ? (SPARE / 2 > 0 ? SPARE / 2 : 1) : 12))}
    PHANTOM_WORKERS=${PHANTOM_WORKERS:-$((NPROC < 16 ? NPROC : 16))}
    TWO_RANKS=$((GPUS >= 2 ? 1 : 0))
    DDP_NOTE="not run: $GPUS GPU"
    EXTRA=()
else
    # the tiny network of the test suite (tests/gliomics_testing.py, TINY_OVERRIDES) on 3 mm phantoms, in fp32 on
    # the CPU; the "accelerator" prediction is bf16 autocast on the CPU, so that the comparison has two precisions
    TRAIN_CASES=${TRAIN_CASES:-8}   # two validation cases: one for each of the two ranks
    TEST_CASES=${TEST_CASES:-2}
    CPU_CASES=${CPU_CASES:-1}
    STEPS=${STEPS:-4}
    SPACING=3
    PRESET=mgmtnet_cpu
    DEVICE=cpu
    TRAIN_PRECISION=fp32
    PRED_PRECISION=bf16
    W1=${LOADER_WORKERS:-1}
    W2=${LOADER_WORKERS:-0}
    PHANTOM_WORKERS=${PHANTOM_WORKERS:-2}
    TWO_RANKS=1   # two CPU processes (gloo): checks the torchrun path
    DDP_NOTE=""
    EXTRA=(--set "model.params.feature_size=4" --set "model.params.embed_channels=4"
           --set "model.params.swin_heads=[1, 2]" --set "model.params.marker_hidden=8"
           --set "model.params.descriptors=true" --set "train.patch_size=[32, 32, 32]" --set "train.batch_size=2"
           --set "train.lr=0.003" --set "train.val_every=1" --set "data.val_fraction=0.25")
fi

mkdir -p "$OUT/logs" "$OUT/machine"
STAGE=setup
trap 'echo "gpu_check.sh: failed in step \"$STAGE\"; its output is in $OUT/logs/$STAGE.log" >&2' ERR

# stage NAME COMMAND...: run COMMAND, its output shown and kept in logs/NAME.log, its seconds in stages.tsv
stage() {
    STAGE=$1
    shift
    echo "== $STAGE: $*"
    local t0 t1
    t0=$(date +%s.%N)
    "$@" 2>&1 | tee "$OUT/logs/$STAGE.log"
    t1=$(date +%s.%N)
    awk -v name="$STAGE" -v a="$t0" -v b="$t1" 'BEGIN { printf "%s\t%.2f\n", name, b - a }' >> "$OUT/stages.tsv"
}

T_START=$(date +%s.%N)
lscpu > "$OUT/machine/lscpu.txt" 2>&1 || true
if [ "$GPUS" -ge 1 ]; then
    nvidia-smi -L > "$OUT/machine/nvidia_smi_L.txt" 2>&1 || true
    nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/machine/nvidia_smi.csv" 2>&1 || true
    nvidia-smi > "$OUT/machine/nvidia_smi.txt" 2>&1 || true
fi
{
    printf 'mode\t%s\npreset\t%s\nspacing_mm\t%s\ntrain_cases\t%s\ntest_cases\t%s\ncpu_cases\t%s\n' \
        "$MODE" "$PRESET" "$SPACING" "$TRAIN_CASES" "$TEST_CASES" "$CPU_CASES"
    printf 'steps\t%s\ntrain_precision\t%s\ndevice\t%s\npredict_precision\t%s\nloader_workers_1\t%s\n' \
        "$STEPS" "$TRAIN_PRECISION" "$DEVICE" "$PRED_PRECISION" "$W1"
    printf 'loader_workers_2\t%s\nphantom_workers\t%s\nnproc\t%s\ngpus\t%s\nddp_note\t%s\n' \
        "$W2" "$PHANTOM_WORKERS" "$NPROC" "$GPUS" "$DDP_NOTE"
} > "$OUT/settings.tsv"

echo "gpu_check ($MODE) into $OUT"
echo "CPU: $(grep -m1 '^Model name' "$OUT/machine/lscpu.txt" | sed 's/^Model name: *//'), $NPROC cores"
if [ "$GPUS" -ge 1 ]; then cat "$OUT/machine/nvidia_smi.csv"; fi
echo "plan: $TRAIN_CASES + $TEST_CASES phantom cases at $SPACING mm; $PRESET for $STEPS steps ($TRAIN_PRECISION on" \
     "$DEVICE, $W1 loader workers); predict $TEST_CASES cases ($PRED_PRECISION on $DEVICE) and $CPU_CASES on the CPU (fp32)"

phantoms() {
    "$GLIOMICS" phantom -o "$OUT/cohort_train" --cases "$TRAIN_CASES" --spacing "$SPACING" --sites 4 --seed 1 \
        -j "$PHANTOM_WORKERS" --no-progress
    "$GLIOMICS" phantom -o "$OUT/cohort_test" --cases "$TEST_CASES" --spacing "$SPACING" --sites 1 --seed 2 \
        --site-start 4 -j "$PHANTOM_WORKERS" --no-progress
}
stage phantom phantoms

TRAIN_ARGS=(--data "$OUT/cohort_train" --markers "$OUT/cohort_train/markers.csv" --preset "$PRESET"
            --steps "$STEPS" --device "$DEVICE" --precision "$TRAIN_PRECISION" --no-progress ${EXTRA[@]+"${EXTRA[@]}"})
stage train_1 "$GLIOMICS" train "${TRAIN_ARGS[@]}" --out "$OUT/run_1" --set "train.num_workers=$W1"
stage model_step "$PY" "$REPORT" model-step "$OUT/run_1" --device "$DEVICE" --precision "$TRAIN_PRECISION" \
    --json "$OUT/model_step.json"
if [ "$TWO_RANKS" = 1 ]; then
    stage train_2 "$TORCHRUN" --standalone --nproc_per_node=2 -m gliomics.train "${TRAIN_ARGS[@]}" \
        --out "$OUT/run_2" --set "train.num_workers=$W2"
fi

stage predict_accel "$GLIOMICS" predict -i "$OUT/cohort_test" -o "$OUT/pred_accel" -m "$OUT/run_1" \
    --device "$DEVICE" --precision "$PRED_PRECISION" --no-progress
stage subset "$PY" "$REPORT" subset "$OUT/cohort_test" "$CPU_CASES" "$OUT/cpu_subset.csv"
stage predict_cpu "$GLIOMICS" predict -i "$OUT/cpu_subset.csv" -o "$OUT/pred_cpu" -m "$OUT/run_1" \
    --device cpu --precision fp32 --no-progress

awk -v a="$T_START" -v b="$(date +%s.%N)" 'BEGIN { printf "total\t%.2f\n", b - a }' >> "$OUT/stages.tsv"
STAGE=report
echo
"$PY" "$REPORT" report "$OUT" | tee "$OUT/logs/report.log"
echo
echo "figures: $OUT/gpu_check.json; table: $OUT/gpu_check.md"
