#!/usr/bin/env bash
# Put everything the benchmarks need on the device machine (which has no internet) into
# ignored folders of the working tree, to be carried there: run HERE, from any directory,
# before the device calls.
#
#   .data/pbc28.npz   the PBC tiles (31 MB), copied from ../shared/data/
#   .whl/*.whl        the reference package tsimcne 0.3.12 and the dependencies our
#                     environment lacks (lightning, torchmetrics, lightning-utilities);
#                     all pure Python (py3-none-any), 1.9 MB together
#   .ref/             the same wheels unpacked (pip --target), 17 MB; optional to carry
#
# Carry [".data", ".whl"] (33 MB; the limit is 64 MiB) and on the device install with
#   python -m pip install --no-index --no-deps --target .ref .whl/*.whl
# (reference_runner.py puts .ref/ first on sys.path), or carry [".data", ".ref"] (50 MB)
# and install nothing.
#
# The device must already have: torch, torchvision, numpy, scikit-learn (scipy, joblib,
# threadpoolctl), pillow, PyYAML, fsspec, packaging, tqdm, typing_extensions.
# Check an environment with:  bash benchmarks/prepare_device.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/work/venv/bin/python}
[ -x "$PY" ] || PY=python

if [ "${1:-}" = "--check" ]; then
    "$PY" - <<'EOF'
import importlib, sys
sys.path.insert(0, ".ref"); sys.path.insert(0, "src")
missing = []
for m in ["torch", "torchvision", "numpy", "sklearn", "scipy", "PIL", "yaml", "fsspec", "packaging", "tqdm",
          "typing_extensions", "napari_tsimcne", "lightning", "torchmetrics", "lightning_utilities", "tsimcne"]:
    try:
        mod = importlib.import_module(m)
        print(f"{m:20s} {getattr(mod, '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        missing.append(m)
        print(f"{m:20s} MISSING ({exc})")
import torch
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
sys.exit(1 if missing else 0)
EOF
    exit $?
fi

DATA=${DATA:-../shared/data/pbc28.npz}
mkdir -p .data .whl
cp -u "$DATA" .data/pbc28.npz

# Versions that install beside torch 2.x without touching it (--no-deps everywhere).
"$PY" -m pip download --quiet --no-deps -d .whl \
    tsimcne==0.3.12 lightning==2.6.6 torchmetrics==1.9.0 lightning-utilities==0.15.3

rm -rf .ref
"$PY" -m pip install --quiet --no-index --no-deps --target .ref .whl/*.whl

du -sh .data .whl .ref
echo "carry: [\".data\", \".whl\"] = $(du -sc .data .whl | tail -1 | cut -f1) KiB (limit 65536 KiB)"
