#!/usr/bin/env bash
# Installs everything napari-tsimcne needs into a virtual environment (default .venv):
# the system libraries napari needs under a virtual display (Debian/Ubuntu, as root or with sudo),
# PyTorch, and the package with its napari and testing extras. Safe to run again: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

SYSTEM_PACKAGES="xvfb xauth libgl1-mesa-dri libegl1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3 libfontconfig1"

if command -v apt-get >/dev/null 2>&1 && ! command -v xvfb-run >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "==> installing system packages for napari (Xvfb, OpenGL, Qt's X11 libraries)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $SYSTEM_PACKAGES >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
PIP="$VENV/bin/python -m pip"
if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "==> installing PyTorch (plain pip; pinned here, ranges in pyproject.toml)"
  $PIP install -q torch==2.14.1 torchvision==0.29.1
fi
stamp="$VENV/.napari-tsimcne-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # napari leaves the Qt binding to the user; this script picks PyQt6 (the pyqt6 extra; PySide6 works too)
  echo "==> installing napari-tsimcne with napari, PyQt6 and the testing extras"
  $PIP install -q -e ".[pyqt6,testing]"
  echo "==> compiling fast-hdbscan once (numba; up to a minute or two on 2 cores), for quick clustering later"
  "$VENV/bin/python" -c "import numpy as np; from fast_hdbscan import HDBSCAN
HDBSCAN(min_cluster_size=5).fit_predict(np.random.default_rng(0).normal(size=(500, 2)))" || true
  touch "$stamp"
fi
echo "==> ready: $VENV"
