#!/usr/bin/env bash
# One prepared GPU check for a session that is lent a device (see docs/benchmarks.md):
# the GPU paths the CPU-only CI cannot reach, then the throughput targets, all output under $OUT.
# Usage on the device machine (repo root, CIFAR-10 JPEG tree unpacked at $DATA):
#   DATA=/tmp/cifar OUT=/tmp/out bash scripts/device_check.sh
set -uo pipefail
OUT=${OUT:-bench-results}; DATA=${DATA:?set DATA to an unpacked CIFAR-10 JPEG tree}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 FASTKD_CACHE=/tmp/fastkd-cache
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/device.txt"
# 1. the test suite on the GPU machine (CUDA generators, bf16 autocast, DALI mixed decode if installed)
python3 -m pytest -q -x tests 2>&1 | tail -5 | tee "$OUT/tests.txt"
# 2. pipeline throughput: ResNet-18, batch 512, bf16, channels_last, per-sample MixUp and CutMix
for aug in crop_flip+mixup crop_flip+cutmix; do
  python3 scripts/bench_pipeline.py --data "$DATA" --augment "$aug" --per-sample --workers 16 --steps 50 \
    --json "$OUT/pipeline-$aug.json" 2>&1 | grep -v "it/s]" | tail -20 | tee -a "$OUT/pipeline.txt"
done
# 3. metric speed on the torch GPU path
python3 scripts/bench_metrics.py --sizes 10000 50000 1000000 --dims 10 512 2048 --max-knn-n 100000 \
  --max-bytes 3e10 --json "$OUT/metrics.json" 2>&1 | tail -12 | tee "$OUT/metrics.txt"
