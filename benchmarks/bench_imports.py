"""Import times: the package, the reader, the napari manifest and ``napari-tsimcne --help``.

Each case runs in a fresh interpreter, ``--repeats`` times; the median wall-clock time of the whole
process is reported, with whether PyTorch ended up imported. ``--src`` points at another source tree
(for example an older checkout unpacked with ``git archive``) to compare before and after::

    python benchmarks/bench_imports.py --out benchmarks/results/imports-cpu-2core.json
    python benchmarks/bench_imports.py --src /tmp/before/src --label before
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES: dict[str, str] = {
    "python": "pass",
    "import torch": "import torch",
    "import napari_tsimcne": "import napari_tsimcne",
    "import napari_tsimcne.plugin.reader": "import napari_tsimcne.plugin.reader",
    "npe2 manifest": "from npe2 import PluginManifest\n"
    "PluginManifest.from_distribution('napari-tsimcne')",
    "napari-tsimcne --help": "import sys; sys.argv = ['napari-tsimcne', '--help']\n"
    "from napari_tsimcne.cli import main\nmain()",
    "from napari_tsimcne import TSimCNE": "from napari_tsimcne import TSimCNE",
}
"""Case name -> Python source run with ``python -c``."""

REPORT = "\nimport sys as _s; print('TORCH', 'torch' in _s.modules, file=_s.stderr)"


def time_case(code: str, repeats: int, env: dict[str, str]) -> dict:
    """Run ``code`` in fresh interpreters and time them.

    Parameters
    ----------
    code : str
        Python source for ``python -c``.
    repeats : int
        How many processes to time (one extra, untimed run warms the file cache first).
    env : dict of str to str
        The environment of the processes.

    Returns
    -------
    dict
        ``median_s``, ``min_s``, ``runs_s`` (seconds) and ``imports_torch`` (bool).
    """
    runs, torch_loaded = [], None
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", code + REPORT], env=env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{code!r} failed:\n{proc.stderr}")
        torch_loaded = "TORCH True" in proc.stderr
        if i:
            runs.append(round(elapsed, 3))
    return {
        "median_s": round(statistics.median(runs), 3),
        "min_s": min(runs),
        "runs_s": runs,
        "imports_torch": torch_loaded,
    }


def main(argv: list[str] | None = None) -> dict:
    """Time every case and print (and optionally write) the results as JSON.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The result: ``label``, ``machine`` and ``times`` (case name -> timings).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed processes per case (default: %(default)s)"
    )
    parser.add_argument(
        "--src", help="source tree put first on PYTHONPATH (default: the installed package)"
    )
    parser.add_argument(
        "--label", default="current", help="name of this measurement (default: %(default)s)"
    )
    parser.add_argument("--out", help="JSON file to write; an existing file keeps its other labels")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if args.src:
        paths = [str(Path(args.src).resolve()), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    load_before = os.getloadavg()[0]
    times = {name: time_case(code, args.repeats, env) for name, code in CASES.items()}
    machine = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    times["load_average_1min"] = {
        "start": round(load_before, 2),
        "end": round(os.getloadavg()[0], 2),
    }
    result = {"label": args.label, "machine": machine, "times": times}
    print(json.dumps(result, indent=1))
    if args.out:
        path = Path(args.out)
        stored = json.loads(path.read_text()) if path.is_file() else {}
        stored["machine"] = machine
        stored.setdefault("times", {})[args.label] = times
        stored["note"] = (
            "Wall-clock time of a whole `python -c` process (median of the runs, after one "
            "untimed warm-up run), including interpreter start-up (the 'python' case). "
            "The 2 cores were shared with other work (load_average_1min), so compare "
            "the cases within one label, and 'import torch' across labels for the noise."
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
