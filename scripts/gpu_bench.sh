#!/usr/bin/env bash
# The full-size qwen2.5-vl-7b preset (random weights, 8.29 B parameters) on one GPU: base, erase and
# fastv at 1,024 / 4,096 / 16,384 vision tokens, bfloat16 + SDPA, on whatever torch and transformers
# the machine has. Prints one markdown table for docs/performance.md; keeps the JSON and markdown of
# each size in $OUT (default bench-gpu/).
#
#   scripts/gpu_bench.sh                 # on the GPU machine, from the repository root (< 8 min)
#   scripts/gpu_bench.sh --dry-run       # the same steps on CPU with the tiny preset, 64 and 256 tokens
#
# One erase-bench per token count, each under its own time limit, so a size that runs out of
# memory or time still leaves the others' numbers. Nothing is downloaded or installed: the
# checkout's packages are copied to $OUT/pkgs and put on PYTHONPATH, and erase-bench needs typer,
# pyyaml, pillow and numpy already there; if they are missing, pass a folder of wheels with
# --wheels DIR (made on a machine with the registry:
# pip download typer pyyaml pillow --only-binary :all: --python-version 3.12 -d DIR).
set -euo pipefail

DRY=0
WHEELS=""
OUT="${OUT:-bench-gpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --wheels) WHEELS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    *) echo "gpu_bench.sh: unknown option $1 (known: --dry-run, --wheels DIR, --out DIR)" >&2; exit 2 ;;
  esac
  shift
done

PY="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$DRY" = 1 ]; then
  MODEL=tiny DEVICE=cpu DTYPE=float32 SIZES="64 256" REPEATS=1 NEW=2 LIMIT=300
else
  # 3 repeats after one warm-up round, 8 new tokens: about 1.5 min per size on an H100-class GPU,
  # most of it the 16,384-token ViT; the limits leave room for building the model each time.
  MODEL=qwen2.5-vl-7b DEVICE=cuda DTYPE=bfloat16 SIZES="1024 4096 16384" REPEATS=3 NEW=8 LIMIT=150
fi
mkdir -p "$OUT"

# ---- environment: what the machine has, and the project on top of it without dependencies
"$PY" - "$DEVICE" <<'EOF'
import importlib, sys
device = sys.argv[1]
import torch, transformers
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}")
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("gpu_bench.sh: no CUDA device (use --dry-run to check the steps on CPU)")
    p = torch.cuda.get_device_properties(0)
    print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}")
EOF
if [ -n "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" typer pyyaml pillow
fi
missing=$("$PY" -c "
import importlib.util as u
print(' '.join(m for m in ('typer', 'yaml', 'PIL', 'numpy') if u.find_spec(m) is None))")
if [ -n "$missing" ]; then
  echo "gpu_bench.sh: missing Python packages: $missing (pass --wheels DIR)" >&2
  exit 1
fi
# The checkout as packages, the way setup.py maps them (profiles/ is erase.profiles), copied to
# $OUT/pkgs: no pip, no setuptools, nothing built (on CUDA Stage 1 runs in torch, no C kernel).
rm -rf "$OUT/pkgs" && mkdir -p "$OUT/pkgs"
cp -r runtime/erase calibrate/erase_calibrate "$OUT/pkgs/"
rm -f "$OUT"/pkgs/erase/_entropy_kernel*.so  # a build for this machine's Python, if any, is not the GPU's
cp -r profiles "$OUT/pkgs/erase/profiles"
PKGS=$(cd "$OUT/pkgs" && pwd)
export PYTHONPATH="$PKGS${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import erase, erase_calibrate.bench.measure; print('erase', erase.__version__, 'from', erase.__file__)"
# bench_cmd directly: the console script's entry point would also ask for the calibrator's other
# dependencies (optuna, datasets, ...), which erase-bench does not use
BENCH=("$PY" -c "import sys; sys.argv[0] = 'erase-bench'; from erase_calibrate.cli.bench_cmd import main; main()")

# ---- one erase-bench per size
status=0
for t in $SIZES; do
  echo "== $t vision tokens ($(date -u +%FT%TZ))" >&2
  if ! timeout "$LIMIT" "${BENCH[@]}" --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --attn sdpa \
      --tokens "$t" --methods base,erase,fastv --final-keep-ratio 0.15 --repeats "$REPEATS" --new-tokens "$NEW" \
      --json "$OUT/bench-$t.json" --markdown "$OUT/bench-$t.md" -q >/dev/null; then
    echo "gpu_bench.sh: $t tokens failed or ran past ${LIMIT} s; the other sizes are still reported" >&2
    status=1
  fi
done

# ---- one table over every size that finished
"$PY" - "$OUT" $SIZES <<'EOF'
import json, os, sys
from erase_calibrate.bench import report
out, sizes = sys.argv[1], sys.argv[2:]
runs = [json.load(open(p)) for p in (os.path.join(out, f"bench-{t}.json") for t in sizes) if os.path.exists(p)]
if not runs:
    sys.exit("gpu_bench.sh: no size finished")
first = runs[0]
m = first["machine"]
print(f"\nerase-bench {first['model']['name']} ({first['model']['parameters'] / 1e9:.2f} B parameters, "
      f"{first['model']['dtype']}, {first['model']['attn']}); {first['date']}")
print("machine: " + ", ".join(f"{k} {v}" for k, v in m.items() if k in ("device", "gpu", "torch", "transformers", "cuda", "python")))
print(f"repeats {first['settings']['repeats']} (median), {first['settings']['new_tokens']} new tokens, "
      f"final keep ratio {first['settings']['final_keep_ratio']}\n")
print(report.markdown_table([r for run in runs for r in run["records"]]))
EOF
exit $status
