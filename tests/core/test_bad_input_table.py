"""docs/robustness.md shows what the code really says for every bad input (no training: all checks come first)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "scripts" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module
    spec.loader.exec_module(module)
    return module


def test_robustness_table_is_in_sync_with_the_code():
    script = _script()
    documented = script.table_in_doc(script.DOC.read_text())
    actual = script.table()
    if documented != actual:
        old, new = documented.splitlines(), actual.splitlines()
        changed = [f"- {a}\n+ {b}" for a, b in zip(old, new) if a != b]
        changed += [f"+ {b}" for b in new[len(old) :]] + [f"- {a}" for a in old[len(new) :]]
        raise AssertionError(
            "docs/robustness.md is out of date; run `python scripts/bad_inputs.py --write`.\n"
            + "\n".join(changed)
        )


def test_every_issue_item_has_a_row():
    """The bad inputs listed in issue #5 all appear in the table."""
    text = _script().DOC.read_text()
    for words in (
        "Empty stack",
        "single tile",
        "Five dimensions",
        "smaller than 8 x 8",
        "Non-square",
        "NaN",
        "infinite",
        "constant",
        "Boolean",
        "Complex",
        "uint16",
        "Channel count differs",
        "Tile size differs",
        "corrupt",
        "Foreign",
        "Batch size larger",
        "epoch",
        "learning rate",
        "without CUDA",
        "Input file missing",
    ):
        assert words in text, words
