"""What every benchmark script does at the end: print its JSON result as one line and append it to a file."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result: dict, out: str | None) -> dict:
    """Print ``result`` as one JSON line; with ``out``, also append the line to that .jsonl file."""
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(line + "\n")
    return result
