#!/usr/bin/env bash
# GPU training benchmark: an InternVL2-2B-shaped model (real widths and depths, random bf16 weights),
# LoRA at 448px x up to 6 tiles. Rows: padded vs packed, LoRA vs QLoRA (benchmarks/gpu_train.py, a
# process each), and ZeRO-2 through the real `vlmtune train` path when xtuner + DeepSpeed are present.
#
#   benchmarks/gpu_train.sh [WORK_DIR]        (default: a temp dir; needs ~10 GB disk)
#
# SHAPE=tiny DEVICE=cpu runs the same steps on a tiny model on a CPU (a check of the script itself).
# WHEELS=DIR installs the wheels in DIR first (--no-deps --no-index, into a venv that sees the system
# packages): for a machine that has torch but not xtuner/mmengine/DeepSpeed and cannot reach an index.
# Python: $PYTHON, else <repo>/.venv/bin/python, else python3. Prints a table; exit 0 when every
# row that can run here ran.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then PY="$REPO/.venv/bin/python"
else PY="python3"; fi
if [[ -n "${WHEELS:-}" ]]; then
    "$PY" -m venv --system-site-packages "$WORK/venv"
    PY="$WORK/venv/bin/python"
    "$PY" -m pip install -q --no-deps --no-index "$WHEELS"/*.whl
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
cd "$REPO"

SHAPE="${SHAPE:-2b}"
DEVICE="${DEVICE:-cuda}"
if [[ "$DEVICE" == cuda ]] && ! "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    echo "gpu_train.sh: no CUDA GPU here; for the same steps on a tiny model on CPU: SHAPE=tiny DEVICE=cpu $0" >&2
    exit 2
fi
TILE=$([[ "$SHAPE" == 2b ]] && echo 448 || echo 56)
echo "== building the $SHAPE-shaped folder in $WORK/model"
if [[ ! -f "$WORK/model/config.json" ]]; then
    "$PY" - "$WORK/model" "$SHAPE" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, 'benchmarks')
from gpu_train import build_folder
print('wrote', build_folder(Path(sys.argv[1]), sys.argv[2]))
PY
fi

echo "== padded / packed / QLoRA (one process each)"
"$PY" benchmarks/gpu_train.py --shape "$SHAPE" --device "$DEVICE" --folder "$WORK/model" --json "$WORK/rows.json" \
    "${@:2}"

echo "== ZeRO-2 (vlmtune train vlmtune/recipes/internvl2/internvl2_2b_lora.py --deepspeed zero2)"
if ! "$PY" -c "import xtuner, mmengine, deepspeed" 2>/dev/null; then
    echo "ZeRO-2: not run (xtuner, mmengine or deepspeed not importable; pass WHEELS=DIR)"
    exit 0
fi
"$PY" - "$WORK/zero2_data" "$TILE" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, 'benchmarks')
from bench_packing import make_data
print('data', make_data(Path(sys.argv[1]), 200, tile=int(sys.argv[2])))
PY
"$PY" -m vlmtune.cli train vlmtune/recipes/internvl2/internvl2_2b_lora.py --deepspeed zero2 \
    --checkpoint "$WORK/model" --data "$WORK/zero2_data/data.jsonl" --images "$WORK/zero2_data/images" \
    --work-dir "$WORK/zero2" --cfg-options train_cfg.max_epochs=None train_cfg.max_iters=22 default_hooks.logger.interval=1 \
    default_hooks.checkpoint.interval=1000 > "$WORK/zero2.log" 2>&1 || { tail -20 "$WORK/zero2.log"; exit 1; }
# mmengine logs `time: S` (seconds/iteration) and, on CUDA, `memory: MiB` (peak) per iteration.
grep -E "Iter\(train\) \[ *(1[2-9]|2[0-2])/" "$WORK/zero2.log" | "$PY" -c "
import re, statistics, sys
lines = sys.stdin.read().splitlines()
t = [float(re.search(r'time: ([0-9.]+)', l).group(1)) for l in lines]
m = [int(re.search(r'memory: ([0-9]+)', l).group(1)) for l in lines if 'memory:' in l]
bs = 4  # the recipe's per-device batch size (recipes/_base_/internvl_finetune.py)
print(f'zero2    {bs / statistics.median(t):10.2f} {max(m) / 1024 if m else float(\"nan\"):9.2f}   (median s/iter {statistics.median(t):.3f})')
"
