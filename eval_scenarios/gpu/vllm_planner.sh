#!/usr/bin/env bash
# The LLM planner against vLLM on a GPU node: serve a local model folder, run 20 cases of the unseen-wording
# suite through `--planner llm` (the same hybrid planner, plans from the GPU model), stop the server.
#
#   bash eval_scenarios/gpu/vllm_planner.sh /models/Qwen2.5-VL-7B-Instruct [vision]
#
# Needs: vLLM installed on that node (pip install vllm) and the model folder on its disk (nothing is fetched:
# HF_HUB_OFFLINE=1). With "vision", the current study goes to the model as an image part (a VLM).
# Prints the eval table and writes runs/gpu-vllm/results.json; compare with
#   python -m eval_scenarios.compare_planners runs/gpu-vllm runs/eval-unseen-llm
set -euo pipefail
MODEL=${1:?a local model folder}
VISION=${2:-}
PORT=${PORT:-8000}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
mkdir -p runs
vllm serve "$MODEL" --host 127.0.0.1 --port "$PORT" --served-model-name planner --max-model-len 8192 \
  --gpu-memory-utilization 0.85 > runs/vllm.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" > /dev/null && break
  sleep 2
done
export OSLER_LLM__BASE_URL="http://127.0.0.1:$PORT/v1" OSLER_MODEL=planner
[ "$VISION" = vision ] && export OSLER_PLANNER_VISION=1
.venv/bin/osler eval eval_scenarios/unseen/wordings.yaml --planner llm --limit 20 --out runs/gpu-vllm
