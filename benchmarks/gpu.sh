#!/usr/bin/env bash
# The CUDA / bf16 path of rfau in one go, for the first CUDA machine available.
#
#     bash benchmarks/gpu.sh                       # everything under $OUT, else gpu-out/
#     OUT=/tmp/gpu BENCH_TIMEOUT_S=900 bash benchmarks/gpu.sh
#     DEVICE=cpu PYTHON=.venv/bin/python BENCH_TIMEOUT_S=60 bash benchmarks/gpu.sh   # dry run without a GPU
#
# 1. Python: $PYTHON if set; else $VENV (default .venv-gpu) if its torch sees CUDA; else a new
#    $VENV (with the system's packages when the system python already has a CUDA torch, as in
#    NGC containers) and `pip install "$TORCH_PIN" -e ".[test]"` as the Makefile does. TORCH_PIN
#    defaults to the Makefile's pin; PyPI's Linux x86 wheel of it is a CUDA build. Another CUDA
#    version: TORCH_PIN="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126".
#    pip is the only thing that may use the network; every rfau run is offline.
# 2. Tiny digits inputs (data, ResNet, ViT, forget lists), built on the CPU under $OUT/inputs.
# 3. The suite's GPU tests (tests/test_cuda.py; SUITE_ARGS changes what pytest runs, e.g.
#    "-n 8 tests" for the whole suite, whose other tests stay on the CPU).
# 4. `rfau unlearn --device cuda`, in bf16 and in fp32: ResNet class, ResNet sample (a random 10%
#    of rows), ViT class; and `rfau retrain` of that sample request, the cost RFAU replaces. One
#    line of timings and results per run.
# 5. The scenario bench (benchmarks/scenarios.py, else benchmarks/bench_digits.py) under a time
#    limit, RFAU only by default (BENCH_ARGS changes it; BENCH_TIMEOUT_S=0 skips it).
#
# It cannot hang: every step runs under `timeout` (SETUP_TIMEOUT_S, UNLEARN_TIMEOUT_S,
# BENCH_TIMEOUT_S, SUITE_TIMEOUT_S); a failed step is recorded and the script goes on. Exit
# status: the number of failed steps (0: all ran). Everything lands under $OUT: summary.txt
# (what to paste in the README), log.txt (every command's output), inputs/,
# unlearn/*/report.json, bench/. SUMMARY_FILE and LOG_FILE put the first two elsewhere (a
# lease that returns only what is under its own folder).
set -u -o pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-gpu-out}
VENV=${VENV:-.venv-gpu}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
DEVICE=${DEVICE:-cuda}
SETUP_TIMEOUT_S=${SETUP_TIMEOUT_S:-1800}
UNLEARN_TIMEOUT_S=${UNLEARN_TIMEOUT_S:-600}
BENCH_TIMEOUT_S=${BENCH_TIMEOUT_S:-1800}
BENCH_ARGS=${BENCH_ARGS:---methods rfau --seeds 0 --reference-seeds 0,1}
SUITE_TIMEOUT_S=${SUITE_TIMEOUT_S:-900}
SUITE_ARGS=${SUITE_ARGS:-tests/test_cuda.py}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=${LOG_FILE:-$OUT/log.txt}
SUMMARY=${SUMMARY_FILE:-$OUT/summary.txt}
FAILED=0
: >"$SUMMARY"

say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME LIMIT_S COMMAND...: run under a time limit, log its output, record the outcome.
step() {
    local name=$1 limit=$2 start rc
    shift 2
    start=$(date +%s)
    echo "=== $name: $*" >>"$LOG"
    timeout --kill-after=30 "$limit" "$@" >>"$LOG" 2>&1 </dev/null
    rc=$?
    if [ "$rc" -eq 0 ]; then
        say "ok     $name ($(( $(date +%s) - start )) s)"
    else
        [ "$rc" -eq 124 ] && rc="124 (timed out after ${limit} s)"
        say "FAILED $name: exit $rc after $(( $(date +%s) - start )) s (see $LOG)"
        FAILED=$((FAILED + 1))
    fi
}

has_cuda_torch() { timeout 120 "$1" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1; }

say "rfau gpu.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), device $DEVICE"
timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$SUMMARY" \
    || say "nvidia-smi: not available"

# 1. Python with a CUDA torch.
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x "$VENV/bin/python" ] && has_cuda_torch "$VENV/bin/python"; then
    PY="$VENV/bin/python"
else
    SYSTEM_SITE=""
    has_cuda_torch python3 && SYSTEM_SITE="--system-site-packages"
    [ -x "$VENV/bin/python" ] || step "venv" 300 python3 -m venv $SYSTEM_SITE "$VENV"
    step "pip upgrade" "$SETUP_TIMEOUT_S" "$VENV/bin/pip" install -q --upgrade pip
    if [ -n "$SYSTEM_SITE" ]; then
        step "pip install" "$SETUP_TIMEOUT_S" "$VENV/bin/pip" install -q -e ".[test]"
    else
        # shellcheck disable=SC2086  # TORCH_PIN may carry pip options (--index-url ...)
        step "pip install" "$SETUP_TIMEOUT_S" "$VENV/bin/pip" install -q $TORCH_PIN -e ".[test]"
    fi
    PY="$VENV/bin/python"
fi
if [ "$DEVICE" = cuda ] && ! has_cuda_torch "$PY"; then
    say "FAILED: $PY has no CUDA torch ($(timeout 60 "$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -1)); stopping"
    exit 1
fi
say "python: $PY; $(timeout 60 "$PY" -c 'import torch; c = torch.cuda.is_available(); print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0) if c else "(no GPU)")' 2>&1 | tail -1)"

# 2. Inputs: digits, the tiny ResNet and ViT, a class and a 10% sample forget list.
INPUTS="$OUT/inputs"
mkdir -p "$INPUTS"
cat >"$INPUTS/build.py" <<'EOF'
import sys
from pathlib import Path

import datasets
import numpy as np

from rfau_cli import toy

root = Path(sys.argv[1])
train, test = toy.digits_datasets(root / "digits")
toy.train_digits_model("resnet", train, root / "resnet")
toy.train_digits_model("vit", train, root / "vit", epochs=60)
(root / "class.txt").write_text("3\n")
n = len(datasets.load_from_disk(str(train)))
rows = np.sort(np.random.default_rng(0).choice(n, n // 10, replace=False))
(root / "sample.txt").write_text("\n".join(map(str, rows)) + "\n")
(root / "done").write_text("ok\n")
EOF
# One thread, as the suite trains them. On an H200 machine's 16 cores, beside the suite's eight
# workers, this step with torch's default threads ran past 100 s (11 s on two cores with one
# thread); oversubscribed threads are the likely cause, not measured.
[ -f "$INPUTS/done" ] || step "build inputs" "$SETUP_TIMEOUT_S" env OMP_NUM_THREADS=1 "$PY" "$INPUTS/build.py" "$INPUTS"

# 3. The GPU tests of the suite.
# shellcheck disable=SC2086  # SUITE_ARGS is a list of pytest arguments
step "pytest $SUITE_ARGS" "$SUITE_TIMEOUT_S" "$PY" -m pytest -q -p no:cacheprovider -rs $SUITE_ARGS
grep -E "^(FAILED|ERROR|SKIPPED)|[0-9]+ (passed|failed)" "$LOG" | tail -40 >>"$SUMMARY"

# 4. rfau unlearn (and the retrain it replaces) on the device.
RUNS="$OUT/unlearn"
mkdir -p "$RUNS"
run_cli() {  # COMMAND NAME MODEL BY FORGET PRECISION
    local command=$1 name=$2 model=$3 by=$4 forget=$5 precision=$6
    rm -rf "${RUNS:?}/$name"
    step "$command $name" "$UNLEARN_TIMEOUT_S" "$PY" -m rfau_cli "$command" --model "$INPUTS/$model" \
        --data "$INPUTS/digits/train" --test-data "$INPUTS/digits/test" --forget "$INPUTS/$forget" --by "$by" \
        --device "$DEVICE" --precision "$precision" --out "$RUNS/$name" --quiet
}
for run in "unlearn resnet-class resnet class class.txt" "unlearn resnet-sample resnet sample sample.txt" \
    "retrain resnet-sample-retrain resnet sample sample.txt" "unlearn vit-class vit class class.txt"; do
    read -r command name model by forget <<<"$run"
    for precision in bf16 fp32; do  # side by side: a lease cut short still compares the two
        run_cli "$command" "$name-$precision" "$model" "$by" "$forget" "$precision"
    done
done
cat >"$RUNS/table.py" <<'EOF'
import json
import sys
from pathlib import Path

print(f"{'run':<28} {'device':<7} {'prec':<5} {'steps':>5} {'load':>6} {'setup':>6} {'fit':>6} {'audits':>6} "
      f"{'total':>6} {'D_f acc':>13} {'D_f conf':>13} {'test acc':>13} {'GPU MiB':>8}")
for path in sorted(Path(sys.argv[1]).glob("*/report.json")):
    r = json.loads(path.read_text())
    t, b, a = r["timings_s"], r["metrics"]["before"], r["metrics"]["after"]
    audits = t.get("audit_before", 0) + t.get("audit_after", 0)

    def pair(key: str, metric: str) -> str:
        return f"{b[key][metric]:.3f}->{a[key][metric]:.3f}"

    print(f"{path.parent.name:<28} {r['device']:<7} {r['precision']:<5} {r['training']['steps']:>5} {t['load']:>6.1f} "
          f"{t['setup']:>6.1f} {t['fit']:>6.1f} {audits:>6.1f} {t['total']:>6.1f} {pair('forget', 'acc'):>13} "
          f"{pair('forget', 'conf'):>13} {pair('test', 'acc'):>13} {r['peak_memory_mib'].get('cuda_mib', 0):>8.0f}")
EOF
timeout 120 "$PY" "$RUNS/table.py" "$RUNS" 2>>"$LOG" | tee -a "$SUMMARY"

# 5. The scenario bench, under a time limit.
rm -rf "$OUT/bench"
if [ "$BENCH_TIMEOUT_S" -eq 0 ]; then
    say "bench skipped (BENCH_TIMEOUT_S=0)"
elif [ -f benchmarks/scenarios.py ]; then
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
    step "bench scenarios.py" "$BENCH_TIMEOUT_S" "$PY" benchmarks/scenarios.py --out "$OUT/bench" \
        --cache "$OUT/bench-inputs" $BENCH_ARGS --bench-args "--device $DEVICE --precision bf16"
else
    step "bench bench_digits.py" "$BENCH_TIMEOUT_S" "$PY" benchmarks/bench_digits.py --out "$OUT/bench" \
        --cache "$OUT/bench-inputs" --methods rfau --seeds 0
fi
[ -f "$OUT/bench/scenarios.md" ] && cat "$OUT/bench/scenarios.md" >>"$SUMMARY"

say "failed steps: $FAILED; everything is under $OUT"
exit "$FAILED"
