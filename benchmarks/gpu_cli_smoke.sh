#!/usr/bin/env bash
# The real `autoenc` CLI on a CUDA machine: synth -> fit (bf16, accumulation 2) -> resume from
# the checkpoint alone -> test. Prints the metrics; used next to gpu_check.py on a lent GPU.
# Usage: benchmarks/gpu_cli_smoke.sh WORKDIR [python]
set -euo pipefail
work=${1:?usage: gpu_cli_smoke.sh WORKDIR [python]}
py=${2:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work" && cd "$work"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
$py -m autoenc synth --out data/gpu --scenes 10 --size 1024 --seed 3 --quiet
common=(--data.root data/gpu --data.num_workers 4 --trainer.limit_val_batches 2
        --trainer.enable_progress_bar false)
t0=$(date +%s.%N)
$py -m autoenc fit --config "$repo/configs/residual.yaml" "${common[@]}" --trainer.max_steps 40
t1=$(date +%s.%N)
$py -m autoenc fit --ckpt_path lightning_logs/residual/checkpoints/last.ckpt --trainer.max_steps 60
t2=$(date +%s.%N)
$py -m autoenc test --config "$repo/configs/residual.yaml" "${common[@]}" \
    --ckpt_path lightning_logs/residual/checkpoints/last.ckpt
$py - <<'PY'
import torch
ck = torch.load("lightning_logs/residual/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
print("resumed checkpoint: global_step", ck["global_step"], "epoch", ck["epoch"])
PY
$py -c "print(f'fit 40 steps: {$t1 - $t0:.1f} s; resume to 60 steps: {$t2 - $t1:.1f} s')"
