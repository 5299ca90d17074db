#!/usr/bin/env bash
# Installs everything (scripts/install.sh) and runs the main job:
# with a display, napari opens with real sample tiles and the t-SimCNE widgets docked;
# without one, the command-line tool trains on the sample and writes the model, the embedding and a PNG of the map.
# Extra arguments go to `napari-tsimcne demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV=${VENV:-.venv}
exec "$VENV/bin/napari-tsimcne" demo "$@"
