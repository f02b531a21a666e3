#!/usr/bin/env bash
# One prepared GPU check for a session that is lent a device (results go to docs/benchmarks.md):
# the GPU variants of the tests (CPU-only CI skips them), then the throughput targets; all
# output under $OUT.
#
# On the device machine, from the repo root, with the CIFAR-10 JPEG archive carried as
# .carry/cifar10-jpeg.tar.gz (or DATA pointing at an unpacked tree) and, optionally, wheels for
# the backends the image lacks (DALI, FFCV and their needs) in .whl/:
#   OUT=$OUT bash scripts/device_check.sh
set -uo pipefail
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
if [ -z "${DATA:-}" ]; then
  DATA=/tmp/cifar10-jpeg
  [ -d "$DATA/train" ] || { mkdir -p "$DATA" && tar -xzf .carry/cifar10-jpeg.tar.gz -C "$DATA"; }
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 FASTKD_CACHE=/tmp/fastkd-cache
python3 - <<'PY' | tee "$OUT/device.txt"
import importlib.util, torch
print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")
for m in ("nvidia.dali", "ffcv", "faiss"):
    try:
        print(m, "installed" if importlib.util.find_spec(m) else "missing")
    except ModuleNotFoundError:
        print(m, "missing")
PY
# 1. the GPU variants of the tests, with their prints (nvJPEG vs PIL error), then the whole suite
python3 -m pytest -q -rs -s -k "cuda or gpu" tests 2>&1 | tee "$OUT/tests-cuda.txt" | grep -E "mixed decode|passed|failed|Error" | tail -20
python3 -m pytest -q tests 2>&1 | tee "$OUT/tests.txt" | tail -5
# 2. pipeline throughput (every installed backend, with epoch-start latency): ResNet-18 teacher,
#    batch 512, bf16, channels_last, per-sample MixUp and CutMix, 16 loader workers/threads
for aug in crop_flip+mixup crop_flip+cutmix; do
  python3 scripts/bench_pipeline.py --data "$DATA" --augment "$aug" --per-sample --workers 16 --steps 50 \
    --loader-steps 100 --json "$OUT/pipeline-$aug.json" 2>&1 | grep -v "it/s]" | tail -20 | tee -a "$OUT/pipeline.txt"
done
# 3. metric speed on the torch GPU path
python3 scripts/bench_metrics.py --sizes 10000 50000 1000000 --dims 10 512 2048 --max-knn-n 100000 \
  --max-bytes 3e10 --json "$OUT/metrics.json" 2>&1 | tail -12 | tee "$OUT/metrics.txt"
# 4. the fast grid on the real CIFAR-10 tree: five ResNet-18 teachers, LeNet and AlexNet students,
#    the from-scratch baselines, every metric, the report (its folder comes back under $OUT)
start=$(date +%s)
timeout 600 python3 -m fastkd study --preset fast --data "$DATA" --set common.data.name=imagefolder \
  --out "$OUT/fast-grid" --quiet 2>&1 | tail -60 | tee "$OUT/fast-grid.txt"
echo "fast grid wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/fast-grid.txt"
rm -rf "$OUT"/fast-grid/runs  # the ledger and report hold every number; outputs are too large to bring back
