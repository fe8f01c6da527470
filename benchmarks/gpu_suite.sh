#!/usr/bin/env bash
# The one script a GPU session runs: every fast path measured side by side with the exact fp32 path, each figure
# written under ${OUT:-benchmarks/out}, in well under 8 minutes on one H100.
#
#   bash benchmarks/gpu_suite.sh                  # on the GPU machine (dim 160, batch 32 / batch 1 and 16)
#   QUICK=1 bash benchmarks/gpu_suite.sh          # anywhere, tiny models (--quick): checks that the suite runs
#   QUICK=1 SKIP_COMPILE=1 bash benchmarks/gpu_suite.sh   # the same without the two torch.compile steps
#
# Steps (each under its own `timeout`, so one failure or hang does not cost the others):
#   info              nvidia-smi, torch / CUDA / cuDNN versions, the GPU                          -> suite.log
#   training_matrix   exact fp32 recipe, +channels_last, +bf16, +cudnn.benchmark/TF32, +fused Adam,
#                     +noise and timesteps drawn on the GPU                                       -> training_matrix.md
#   sampling_matrix   exact fp32, channels_last, bf16, fp16, CUDA graphs, strided (20 steps/scale), the
#                     same with the second-order solver                                        -> sampling_matrix.md
#   training_free     SinDDMPipeline.from_image (no training) + first sample, next sample, batch 8, a 1024x1024
#                     (megapixel) sample with its peak memory, next to a dim-160 model's exact sample; the fast
#                     path against the exact sums per call                                      -> training_free.md
#   time_to_quality   train_sinddm.py on balloons (dim 160, batch 32, the recipe) with every eager fast path for
#                     $TQ_MINUTES minutes, a checkpoint every $TQ_CHECKPOINT steps; 4 of them (evenly spaced, the
#                     last included) come back as pipelines to evaluate on the CPU machine -> snapshots-*.tar
#                     (skipped without ./shared/images/balloons.png: a synthetic image has no quality to reach)
#   training_compile  exact, then every eager fast path + torch.compile (mode $TRAIN_COMPILE_MODE)  -> training_compile.md
#   sampling_compile  exact, then bf16 + channels_last + torch.compile ($SAMPLE_COMPILE_MODE)       -> sampling_compile.md
# plus suite.log: everything printed (progress lines as each row ends, so a step cut short still leaves figures).
# At most eight files (the device tool returns at most 8 from $OUT, 16 MB each). Every step's limit is also cut to
# what is left before SUITE_DEADLINE seconds (default 560 on the GPU: the device tool's call limit is 600), so the
# slow compile steps, last, get only the time that is left.
#
# On the project's GPU machines (see /work/.library/device/): their Python (3.12) has torch but not diffusers. Before
# the run, on the CPU machine, in the repository root (.whl/ is git-ignored), fetch the three missing wheels:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#       diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer==0.1.0
# then call the device tool once: command "bash benchmarks/gpu_suite.sh", carry [".whl"], timeout_s 600. This script
# installs .whl/*.whl into /tmp/site when diffusers is missing. ../shared does not travel: without a copy of
# balloons.png in ./shared/images/ (untracked; do not commit it) the benchmarks use a synthetic image of the same size
# (same scales, same cost; the tables say which).
#
# Environment: OUT, QUICK=1, SKIP_COMPILE=1, PYTHON (default python3), THREADS (QUICK only, default 1), the modes
# TRAIN_COMPILE_MODE (default "default") and SAMPLE_COMPILE_MODE (default "reduce-overhead"), the per-step limits
# in seconds T_TRAIN, T_SAMPLE, T_FREE, T_TQ, T_TRAIN_COMPILE, T_SAMPLE_COMPILE, SUITE_DEADLINE, and TQ_MINUTES, TQ_CHECKPOINT.
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 1
OUT="${OUT:-benchmarks/out}"
mkdir -p "$OUT"
LOG="$OUT/suite.log"
: >"$LOG"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
TRAIN_COMPILE_MODE="${TRAIN_COMPILE_MODE:-default}"
SAMPLE_COMPILE_MODE="${SAMPLE_COMPILE_MODE:-reduce-overhead}"
SUITE_START=$SECONDS
SUMMARY=()

if [ "${QUICK:-0}" = 1 ]; then
    export OMP_NUM_THREADS="${THREADS:-1}"
    COMMON=(--quick --threads "${THREADS:-1}")
    TRAIN=()
    SAMPLE=(--num_inference_steps 10)
    TQ=(--dim 8 --train_batch_size 2 --num_threads "${THREADS:-1}")
    : "${TQ_MINUTES:=0.2}" "${TQ_CHECKPOINT:=5}"
    # tiny models, but a CPU compiles slowly (and may be shared)
    : "${T_TRAIN:=300}" "${T_SAMPLE:=600}" "${T_FREE:=300}" "${T_TQ:=120}" "${T_TRAIN_COMPILE:=600}" "${T_SAMPLE_COMPILE:=900}"
    : "${SUITE_DEADLINE:=3600}"
else
    COMMON=()
    TRAIN=(--dim 160 --batch_size 32 --repeats 10 --warmup 3)
    SAMPLE=(--dim 160 --batch_sizes 1 16 --repeats 3 --warmup 1 --num_inference_steps 20)
    TQ=(--dim 160 --train_batch_size 32)
    : "${TQ_MINUTES:=3}" "${TQ_CHECKPOINT:=1000}"
    # the H100 budget: the matrices about 1.5 minutes, time to quality TQ_MINUTES + 0.5, compiling what is left
    : "${T_TRAIN:=90}" "${T_SAMPLE:=140}" "${T_FREE:=60}" "${T_TQ:=230}" "${T_TRAIN_COMPILE:=120}" "${T_SAMPLE_COMPILE:=120}"
    : "${SUITE_DEADLINE:=560}"
fi

say() { echo "$*" | tee -a "$LOG"; }

# limit_for LIMIT: LIMIT, cut to the seconds left before SUITE_DEADLINE (at least 1)
limit_for() {
    local left=$((SUITE_DEADLINE - (SECONDS - SUITE_START)))
    if [ "$left" -lt "$1" ]; then echo $((left > 1 ? left : 1)); else echo "$1"; fi
}

# run_step NAME LIMIT SCRIPT ARGS...: the script's table to $OUT/NAME.md, its stderr to the log and the console.
run_step() {
    local name=$1 limit script=$3
    limit=$(limit_for "$2")
    shift 3
    local start=$SECONDS
    say ""
    say "=== $name: $PYTHON benchmarks/$script $* (limit ${limit} s)"
    timeout --kill-after=15 "$limit" "$PYTHON" "benchmarks/$script" "$@" >"$OUT/$name.md" 2> >(tee -a "$LOG" >&2)
    local rc=$?
    tee -a "$LOG" <"$OUT/$name.md"
    finish_step "$name" $rc "$limit" "$start" " (figures so far: the progress lines in suite.log)"
}

# finish_step NAME RC LIMIT START [TIMEOUT_NOTE]: record how a step ended (summary line and log)
finish_step() {
    local status
    case $2 in
        0) status="ok" ;;
        124 | 137) status="TIMED OUT at ${3} s${5:-}" ;;
        *) status="FAILED (exit $2; see suite.log)" ;;
    esac
    SUMMARY+=("$1: $status, $((SECONDS - $4)) s")
    say "=== $1: $status, $((SECONDS - $4)) s"
}

install_carried_wheels() {
    "$PYTHON" -c "import diffusers" 2>/dev/null && return 0
    if compgen -G ".whl/*.whl" >/dev/null; then
        say "diffusers missing: installing the carried wheels (.whl/) into /tmp/site"
        "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl 2>&1 | tee -a "$LOG"
        export PYTHONPATH="$PYTHONPATH:/tmp/site"
    fi
    "$PYTHON" -c "import diffusers" 2>/dev/null && return 0
    say "diffusers is not importable: carry its wheels (see the header of benchmarks/gpu_suite.sh)"
    return 1
}

write_info() {
    {
        echo "# gpu_suite $(date -u '+%Y-%m-%d %H:%M:%S UTC'), QUICK=${QUICK:-0}"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo 'n/a (no git)')"
        echo "host: $(uname -srm); $(getconf _NPROCESSORS_ONLN) CPUs"
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
            nvidia-smi
        else
            echo "nvidia-smi: not found"
        fi
        "$PYTHON" - <<'EOF'
import sys

import torch

print(f"python {sys.version.split()[0]}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
      f"cuDNN {torch.backends.cudnn.version()}")
if torch.cuda.is_available():
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
          f"capability {props.major}.{props.minor}")
else:
    print("GPU: none visible to torch (the suite runs on the CPU)")
try:
    import diffusers

    import sinddm_pipeline

    print(f"diffusers {diffusers.__version__}; sinddm_pipeline from {sinddm_pipeline.__file__}")
except ImportError as error:
    print(f"import failed: {error}")
EOF
    } 2>&1 | tee -a "$LOG"
}

# time_to_quality: train the recipe on balloons with the eager fast paths for TQ_MINUTES, then pack snapshots
time_to_quality() {
    local start=$SECONDS limit image=shared/images/balloons.png run=/tmp/sinddm_time_to_quality
    limit=$(limit_for "$T_TQ")
    say ""
    if [ ! -f "$image" ]; then
        SUMMARY+=("time_to_quality: skipped (no $image)")
        say "=== time_to_quality: skipped (no $image; copy ../shared/images/balloons.png there, untracked)"
        return
    fi
    # leave 45 s of the limit for starting, the last checkpoint and saving
    local minutes
    minutes=$("$PYTHON" -c "print(round(max(0.05, min($TQ_MINUTES, ($limit - 45) / 60)), 2))")
    local args=(--image_path "$image" --output_dir "$run" --overwrite "${TQ[@]}" --max_train_minutes "$minutes"
        --checkpointing_steps "$TQ_CHECKPOINT" --mixed_precision bf16 --channels_last --cudnn_benchmark --allow_tf32
        --fused_adam --device_rng --log_every 50)
    say "=== time_to_quality: $PYTHON train_sinddm.py ${args[*]} (limit ${limit} s)"
    timeout --kill-after=15 "$limit" "$PYTHON" train_sinddm.py "${args[@]}" >>"$LOG" 2>&1
    local rc=$?
    grep -E "Trained steps|weights sha256|Total optimization" "$LOG" | tail -3
    if [ $rc = 0 ]; then
        "$PYTHON" benchmarks/pack_snapshots.py "$run" "$OUT" --count 4 --max_file_mb 15 2>&1 | tee -a "$LOG"
        rc=${PIPESTATUS[0]}
    fi
    finish_step time_to_quality $rc "$limit" "$start"
}

install_carried_wheels || { write_info; exit 1; }
write_info

run_step training_matrix "$T_TRAIN" benchmark_training.py --matrix "${COMMON[@]}" "${TRAIN[@]}"
run_step sampling_matrix "$T_SAMPLE" benchmark_sampling.py --matrix "${COMMON[@]}" "${SAMPLE[@]}"
run_step training_free "$T_FREE" benchmark_training_free.py --megapixel --accuracy "${COMMON[@]}"
time_to_quality
if [ "${SKIP_COMPILE:-0}" = 1 ]; then
    SUMMARY+=("training_compile, sampling_compile: skipped (SKIP_COMPILE=1)")
else
    # last: compiling takes a while, and its failure must not cost the tables above
    run_step training_compile "$T_TRAIN_COMPILE" benchmark_training.py --matrix exact compile \
        --compile_mode "$TRAIN_COMPILE_MODE" "${COMMON[@]}" "${TRAIN[@]}"
    run_step sampling_compile "$T_SAMPLE_COMPILE" benchmark_sampling.py --matrix exact compile \
        --compile_mode "$SAMPLE_COMPILE_MODE" "${COMMON[@]}" "${SAMPLE[@]}"
fi

say ""
say "=== summary ($((SECONDS - SUITE_START)) s in all; files in $OUT)"
for line in "${SUMMARY[@]}"; do say "  $line"; done
