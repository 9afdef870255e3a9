#!/usr/bin/env bash
# GPU smoke test: a two-turn image chat through LMDeploy (TurboMind; PyTorch engine for Phi3) and
# through vlmtune's own model.chat(), greedy, answers side by side, PASS/FAIL (exit 0/1; 2 = cannot run).
#
#   tools/gpu_smoke.sh [FOLDER] [--llm qwen2|internlm2|llama|phi3] [--keep] [gpu_smoke.py options...]
#
#   FOLDER          (first argument) converted official-format folder. Default: a tiny random one built with
#                   tools/make_tiny_model.py in a temp dir (bf16, LLM head_dim 128 so TurboMind takes
#                   it: with the default tiny shapes, head_dim 16, LMDeploy silently falls back to the
#                   PyTorch engine).
#   --llm FAMILY    LLM family of the default tiny folder (default qwen2). Ignored with FOLDER.
#   --keep          keep the temp folder.
#   other options   passed to tools/gpu_smoke.py: --image PATH, --q1/--q2 TEXT, --max-new-tokens N,
#                   --backend auto|turbomind|pytorch, --dtype float16|bfloat16|float32, --device,
#                   --vlmtune-only (runs on CPU: vlmtune side + LMDeploy front-half check, no engine),
#                   --strict-stateful. See `python tools/gpu_smoke.py --help`.
#
# Python: $PYTHON, else <repo>/.venv/bin/python, else python3. The repo is put on PYTHONPATH.
# A tiny random model has near-tied logits: read a FAIL with the notes in tools/gpu_smoke.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
if [[ -n "${PYTHON:-}" ]]; then
    PY="$PYTHON"
elif [[ -x "$REPO/.venv/bin/python" ]]; then
    PY="$REPO/.venv/bin/python"
else
    PY="python3"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

FOLDER=""
if [[ $# -gt 0 && "$1" != -* ]]; then  # the folder, when given, comes first
    FOLDER="$1"
    shift
fi
LLM="qwen2"
KEEP=0
PASS_ARGS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --llm) LLM="${2:?--llm needs a value}"; shift 2 ;;
        --llm=*) LLM="${1#--llm=}"; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) PASS_ARGS+=("$1"); shift ;;  # gpu_smoke.py options and their values
    esac
done

TMP_DIR=""
cleanup() {
    if [[ -n "$TMP_DIR" ]]; then
        if [[ "$KEEP" == 1 ]]; then echo "kept $TMP_DIR"; else rm -rf "$TMP_DIR"; fi
    fi
}
trap cleanup EXIT

if [[ -z "$FOLDER" ]]; then
    TMP_DIR="$(mktemp -d -t vlmtune-gpu-smoke.XXXXXX)"
    FOLDER="$TMP_DIR/tiny_internvl_$LLM"
    echo "building a tiny $LLM folder in $FOLDER"
    # LLM 256 wide / 2 heads -> head_dim 128 (TurboMind takes 64 or 128); ViT 128 wide / 2 heads.
    "$PY" "$REPO/tools/make_tiny_model.py" "$FOLDER" --llm "$LLM" --vit 300m --image-size 56 \
        --max-dynamic-patch 12 --llm-width 256 --llm-heads 2 --llm-kv-heads 2 --llm-intermediate 512 \
        --vit-width 128 --vit-heads 2 --dtype bf16
fi

set +e
"$PY" "$REPO/tools/gpu_smoke.py" "$FOLDER" ${PASS_ARGS[@]+"${PASS_ARGS[@]}"}
RC=$?
set -e
exit "$RC"
