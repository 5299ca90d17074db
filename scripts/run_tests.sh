#!/usr/bin/env bash
# Installs everything (scripts/install.sh), checks the code with ruff (lint and format) and runs the
# whole test suite; GUI tests run under Xvfb.
# Extra arguments go to pytest, e.g. scripts/run_tests.sh -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
VENV=${VENV:-.venv}
run=()
if [ -z "${DISPLAY:-}" ] && command -v xvfb-run >/dev/null 2>&1; then
  run=(xvfb-run -a -s "-screen 0 1600x1000x24")
fi
# the same ruff checks as the pre-commit hooks (.pre-commit-config.yaml), which fetch their tools from
# GitHub and so cannot run where only the package registries are reachable
echo "==> ruff: lint and format"
"$VENV/bin/ruff" check src tests benchmarks scripts
"$VENV/bin/ruff" format --check src tests benchmarks scripts
exec "${run[@]}" "$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
