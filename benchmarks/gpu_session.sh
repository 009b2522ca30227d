#!/usr/bin/env bash
# The CPU benchmarks again on a CUDA GPU, in one go, for a machine lent for a few minutes.
#
#   bash benchmarks/gpu_session.sh OUTDIR        # python3 with workbench importable, models prepared
#
# In order of value, each step bounded by a timeout so that a slow one cannot starve the rest:
#   1. the demo's two commands on the GPU (`make demo`'s train and shift): the CUDA path, timed;
#   2. bench_vs_trl --device cuda: workbench against plain TRL, tokens/s and MFU vs the bf16 peak;
#   3. bench_eval_share: what share of a default run evaluation takes there;
#   4. bench_shift_settings: the shift probe end to end at three precision × batch settings.
# Knobs (environment): VS_TRL_ARGS (extra bench_vs_trl options), SHIFT_SETTINGS, MODEL, DEVICE (cpu to
# rehearse the script on a machine without a GPU).
set -u
OUT=${1:?usage: gpu_session.sh OUTDIR}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
MODEL=${MODEL:-smollm2-135m-instruct}
DEVICE=${DEVICE:-cuda}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TRANSFORMERS_NO_ADVISORY_WARNINGS=1 PYTHONUNBUFFERED=1
WORK=$(mktemp -d)
step() { echo "== $(date +%T) $*"; }

step "device"
$PY -c "import torch, transformers, trl, peft; print(torch.cuda.is_available() and torch.cuda.get_device_name(), 'torch', torch.__version__,
'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__)"

step "demo: train (30 steps, SFT + LoRA, every default)"
start=$(date +%s%N)
timeout 240 $PY -m workbench.cli.main train --model "$MODEL" --dataset instructions --method sft --peft lora \
    --max-steps 30 --run-dir "$WORK/sft-lora" --set learning_rate=2e-4 2>&1 | tail -4
echo "demo_train_wall_ms $(( ($(date +%s%N) - start) / 1000000 ))" | tee "$OUT/demo_times.txt"
step "demo: shift (16 prompts)"
start=$(date +%s%N)
timeout 180 $PY -m workbench.cli.main shift --base "$MODEL" --tuned "$WORK/sft-lora" --prompts instructions \
    --max-prompts 16 --out "$WORK/shift.html" --json "$OUT/demo_shift.json" 2>&1 | tail -4
echo "demo_shift_wall_ms $(( ($(date +%s%N) - start) / 1000000 ))" | tee -a "$OUT/demo_times.txt"

step "bench_vs_trl --device $DEVICE"
# shellcheck disable=SC2086
timeout 330 $PY benchmarks/bench_vs_trl.py --device "$DEVICE" --model "$MODEL" --out "$OUT/vs_trl_gpu.json" \
    ${VS_TRL_ARGS:-} 2>&1 | tail -40

step "bench_eval_share (sft, dpo)"
timeout 150 $PY benchmarks/bench_eval_share.py --methods sft,dpo --out "$OUT/eval_share_gpu.md" -- --model "$MODEL" 2>&1 | tail -12

step "bench_shift_settings"
timeout 150 $PY benchmarks/bench_shift_settings.py --base "$MODEL" --run "$WORK/sft-lora" --repeats 1 \
    --settings "${SHIFT_SETTINGS:-fp32:16,bf16:16,bf16:64}" --out "$OUT/shift_gpu.json" 2>&1 | tail -8
step "done"
