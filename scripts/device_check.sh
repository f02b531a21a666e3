#!/usr/bin/env bash
# The GPU check, as one call of at most 9 minutes on a lent device (docs/benchmarks.md, "The
# device check"). Stages run in order of value, each capped to the time left before the
# script's own deadline, and each leaves ONE file under $OUT the moment it ends, so a call cut
# short still returns every stage before the cut. $OUT/stages.tsv says how each stage ended.
#
#   OUT=$OUT bash scripts/device_check.sh            # on the GPU machine, CIFAR-10 at .carry/
#   OUT=/tmp/dc bash scripts/device_check.sh --small # a dry run of every stage on a CPU (minutes)
#
# Stages: 0 environment; 1 the CUDA tests (JUnit XML); 2 the host-sync, order and teacher-table
# probes; 3 tensor backend vs a 16-worker DataLoader (ResNet-18 teacher, ResNet-18 -> ResNet-20
# KD, batch 512, bf16, channels_last, per-sample MixUp) as ratios to the bare step; 4 a shortened
# real-data grid with its ledger and report; 5 the rest of the suite; 6 the metrics benchmark.
# At most 8 files come back from a device call: stages.tsv plus one per stage.
set -uo pipefail
SMALL=0
[ "${1:-}" = "--small" ] && SMALL=1
OUT=${OUT:-bench-results/device-check}
DEADLINE_S=${DEADLINE_S:-540}     # the whole call; the device tool allows ~9-10 minutes a command
MARGIN_S=10                       # kept back at the end of each stage for packing its file
START=$(date +%s)
WORK=$(mktemp -d /tmp/fastkd-device-check.XXXXXX)
mkdir -p "$OUT"
printf 'stage\tstatus\tseconds\tcap_s\n' > "$OUT/stages.tsv"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 FASTKD_CACHE=$WORK/cache
# wheels carried for packages the machine lacks (see the device tool's README)
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:$WORK/site
fi

left() { echo $(( DEADLINE_S - ($(date +%s) - START) )); }

# stage NAME CAP COMMAND...: run COMMAND with its output in $WORK/NAME/log.txt, for at most CAP
# seconds and never past the deadline; record how it ended.
stage() {
  local name=$1 cap=$2; shift 2
  local avail=$(( $(left) - MARGIN_S ))
  (( cap > avail )) && cap=$avail
  mkdir -p "$WORK/$name"
  if (( cap < 5 )); then
    printf '%s\tskipped (deadline)\t0\t%s\n' "$name" "$cap" >> "$OUT/stages.tsv"
    echo "== $name: skipped, no time left before the deadline"
    return 1
  fi
  echo "== $name (cap ${cap}s, $(left)s left)"
  local t0 rc status
  t0=$(date +%s)
  timeout --kill-after=5 "$cap" "$@" > "$WORK/$name/log.txt" 2>&1
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status="cut at cap" ;; *) status="failed (exit $rc)" ;; esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - t0 ))" "$cap" >> "$OUT/stages.tsv"
  tail -n 15 "$WORK/$name/log.txt"
  return 0
}

# pack NAME: the stage's folder as one file under $OUT (its log alone as .txt)
pack() {
  local name=$1
  if [ "$(ls "$WORK/$name" | wc -l)" = 1 ]; then
    cp "$WORK/$name/log.txt" "$OUT/$name.txt"
  else
    tar -czf "$OUT/$name.tar.gz" -C "$WORK" "$name"
  fi
}

# the data: the CIFAR-10 JPEG tree (or, with --small, the bundled sample), unpacked while the
# first stages run
DATA=$WORK/data
mkdir -p "$DATA"
if (( SMALL )); then
  tar -xzf fastkd/data/sample/*.tar.gz -C "$DATA" & UNPACK=$!
else
  tar -xzf .carry/cifar10-jpeg.tar.gz -C "$DATA" & UNPACK=$!
fi

# fastkd/pipelines and fastkd/kernels are links to the top-level folders: a copy of the tree that
# dropped them gets them back
for pkg in pipelines kernels; do [ -e "fastkd/$pkg" ] || ln -s "../$pkg" "fastkd/$pkg"; done

# the project's pytest options name --timeout (pytest-timeout); a machine without the plugin gets
# the same options without it, instead of pytest refusing to start
if ! python3 -c "import pytest_timeout" 2>/dev/null; then export PYTEST_ADDOPTS="-o addopts=-ra"; fi

if (( SMALL )); then
  XDIST=(-n 2); SUITE=(tests/test_pipelines.py tests/test_augment.py tests/test_mix.py tests/test_losses.py)
  BENCH=(--teacher resnet8 --student lenet --batch-size 64 --precision no --workers 2 --steps 3 --loader-steps 3
         --warmup 1 --repeats 1)
  METRICS=(--sizes 2000 --dims 10 64 --max-knn-n 2000 --max-bytes 1e8)
  GRID=(--set teachers=[resnet8] --set augments=[none,mixup] --set students=[lenet] --set common.data.limit_train=600
        --set common.data.limit_test=200 --set common.data.val_split=100 --set common.train.batch_size=64
        --set common.train.precision=no)
  EPOCH_S=20
else
  XDIST=(-n 8); SUITE=(tests)
  BENCH=(--teacher resnet18 --student resnet20 --batch-size 512 --precision bf16 --workers 16 --steps 50
         --loader-steps 100 --repeats 3)
  METRICS=(--sizes 10000 50000 1000000 --dims 10 512 2048 --max-knn-n 100000 --max-bytes 3e10)
  GRID=()
  EPOCH_S=35  # one epoch of the five ResNet-18 teachers and the students, with their evaluations (an estimate)
fi

# 0. environment: versions, the GPU, which optional packages fastkd would use are missing
stage 0-env 30 python3 - <<'PY'
import importlib.util, platform, subprocess
import torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none visible")
for mod in ("accelerate", "numba", "numpy", "scipy", "matplotlib", "yaml", "safetensors", "PIL", "tqdm", "pytest",
            "xdist", "faiss", "nvidia.dali", "ffcv", "ray"):
    try:
        found = importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:
        found = False
    print(f"{mod:12s} {'present' if found else 'MISSING (its tests skip; fastkd works without it)'}")
try:
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout)
except OSError:
    print("no nvidia-smi")
PY
pack 0-env

# 1. the CUDA tests, in parallel, with JUnit XML
stage 1-cuda-tests 200 python3 -m pytest -q -rs -s "${XDIST[@]}" -k "cuda or gpu" tests \
  --junitxml="$WORK/1-cuda-tests/junit.xml" -p no:cacheprovider
pack 1-cuda-tests

# 2. the probes: host syncs per epoch at 4 and 16 steps (sync debug mode on CUDA), one epoch
#    order for every backend and device, the teacher table kept on the device
stage 2-probes 90 python3 -m pytest -q -rs -s -p no:cacheprovider tests/test_host_sync.py \
  tests/test_pipelines.py::test_every_backend_draws_the_same_epoch_order_on_every_device \
  tests/test_teacher_cache.py -k "host_sync or order or lookup or device"
pack 2-probes

wait "$UNPACK"
# 3. tensor backend against a 16-worker DataLoader, as ratios to the bare step of the same run
stage 3-bench 150 python3 scripts/bench_pipeline.py --data "$DATA" --augment crop_flip+mixup --per-sample \
  --backends tensor dataloader "${BENCH[@]}" --json "$WORK/3-bench/pipeline.json"
pack 3-bench

# 4. the fast grid on the real tree, shortened to the epochs the time left allows (said in its log)
GRID_BUDGET=$(( $(left) - 100 ))  # the suite and the metrics benchmark still to come
EPOCHS=$(( GRID_BUDGET / EPOCH_S )); (( EPOCHS < 1 )) && EPOCHS=1; (( EPOCHS > 30 )) && EPOCHS=30
stage 4-grid "$GRID_BUDGET" python3 -m fastkd study --preset fast --data "$DATA" --set common.data.name=imagefolder \
  --set teacher.train.epochs="$EPOCHS" --set student.train.epochs="$EPOCHS" --set common.train.warmup_epochs=0 \
  "${GRID[@]}" --out "$WORK/grid" --quiet
echo "SHORTENED: ${EPOCHS} epochs per run (the fast preset trains 30), chosen from ${GRID_BUDGET}s of time left" \
  >> "$WORK/4-grid/log.txt"
# whatever finished is in the ledger: the report is made from it even when the grid was cut
python3 -m fastkd report "$WORK/grid" >> "$WORK/4-grid/log.txt" 2>&1
mkdir -p "$WORK/4-grid/grid"
cp -r "$WORK/grid/ledger" "$WORK/grid/report" "$WORK/4-grid/grid/" 2>/dev/null
pack 4-grid

# 5. the rest of the suite with the GPU visible
stage 5-suite 240 python3 -m pytest -q -rs "${XDIST[@]}" -k "not (cuda or gpu)" "${SUITE[@]}" \
  --junitxml="$WORK/5-suite/junit.xml" -p no:cacheprovider
pack 5-suite

# 6. the metrics on the device (torch brute force without a GPU FAISS)
stage 6-metrics 120 python3 scripts/bench_metrics.py "${METRICS[@]}" --json "$WORK/6-metrics/metrics.json"
pack 6-metrics

echo "== done in $(( $(date +%s) - START ))s of ${DEADLINE_S}s"
cat "$OUT/stages.tsv"
rm -rf "$WORK"
