#!/usr/bin/env bash
# GPU check: the CPU demo's stream at paper width (expert C = 64, 4 cells, light ResNet18
# width 64; the search supernet at C = 16, 4 cells, to stay in time) for a few epochs on one GPU, in at most
# ~8 minutes; prints per-epoch times of every learn job, GPU utilisation and memory (nvidia-smi,
# sampled every 2 s). Not yet run: no GPU was lent to the work that wrote it.
#   bash tools/gpu_check.sh [EPOCHS]    (run from the repository root, environment active)
set -euo pipefail
EPOCHS=${1:-3}
OUT=${GPU_CHECK_DIR:-results/gpu-check}
mkdir -p "$OUT"
cat > "$OUT/overlay.yaml" <<YAML
results_dir: $OUT
device: cuda
threads: 4
training: {epochs: $EPOCHS}
search: {sample_epochs: $EPOCHS, channels: 16, n_layers: 4}
expert: {channels: 64, n_layers: 4}
backbone: {width: 64}
YAML
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv,noheader -l 2 \
    > "$OUT/nvidia-smi.csv" &
SMI=$!
trap 'kill $SMI 2>/dev/null || true' EXIT
start=$(date +%s)
timeout 480 snakemake all_tables --cores 4 --resources gpu=1 \
    --configfile config/demo.yaml "$OUT/overlay.yaml" || echo "snakemake stopped (status $?)"
echo "wall: $(( $(date +%s) - start )) s"
kill $SMI 2>/dev/null || true
python - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
for record in sorted(out.glob("runs/*/*/*/states/task*.json")):
    r = json.loads(record.read_text())
    epochs = " ".join(f"{h['seconds']:.1f}" for h in r["history"])
    device = " ".join(f"{h['cuda_train_seconds']:.1f}" for h in r["history"] if "cuda_train_seconds" in h)
    print(f"{record.parent.parent.name:12s} task {r['task']} ({r['strategy']}, {r['device']}): epochs [s] {epochs}"
          f"; training steps on the GPU (CUDA events) [s] {device or '-'}")
rows = [line.split(", ") for line in (out / "nvidia-smi.csv").read_text().splitlines() if line.strip()]
if rows:
    util = [float(r[1].split()[0]) for r in rows]
    mem = [float(r[2].split()[0]) for r in rows]
    print(f"GPU utilisation: mean {sum(util) / len(util):.0f} %, max {max(util):.0f} %; "
          f"memory used: max {max(mem):.0f} MiB of {rows[0][3]}")
PY
