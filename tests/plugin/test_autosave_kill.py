"""A process killed (SIGKILL) while it autosaves leaves a complete autosave file, never a broken one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from napari_tsimcne.plugin.annotations import import_csv

N_ROWS = 20_000

WRITER = textwrap.dedent(f"""
    import sys
    import numpy as np
    import pandas as pd
    from napari_tsimcne.plugin.autosave import AnnotationAutosaver

    saver = AnnotationAutosaver(sys.argv[1])
    n = {N_ROWS}
    features = pd.DataFrame({{"tile_index": np.arange(n), "x": np.random.rand(n), "y": np.random.rand(n),
                             "annotation": "", "cluster": -1}})
    version = 0
    while True:
        version += 1
        features["annotation"] = f"v{{version}}"   # every row names the version: a torn file would mix them
        features["cluster"] = version
        saver.save(features)
        saver.flush()
        print(version, flush=True)               # this version is on disk
""")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.13, 0.31])
def test_killed_writer_leaves_the_last_saved_version_intact(tmp_path, delay_s):
    path = tmp_path / "stack-0123456789abcdef.autosave.csv"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        acknowledged = [
            int(child.stdout.readline()) for _ in range(3)
        ]  # three versions known to be on disk
        time.sleep(delay_s)  # then kill it somewhere in the middle of later writes
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    table = import_csv(path, N_ROWS)  # complete, and every tile index exactly once
    versions = set(table["annotation"])
    assert len(versions) == 1, f"a torn file mixes versions {sorted(versions)[:5]}"
    saved = int(versions.pop()[1:])
    assert saved >= acknowledged[-1]  # nothing that was reported saved is lost
    assert (table["cluster"] == saved).all()


def test_a_killed_writers_temporaries_are_removed_by_the_next_autosaver(tmp_path):
    from napari_tsimcne.plugin.autosave import AnnotationAutosaver

    path = tmp_path / "stack-0123456789abcdef.autosave.csv"
    stale, fresh, other = (
        tmp_path / f".{path.name}.abc.tmp",
        tmp_path / f".{path.name}.def.tmp",
        tmp_path / ".other.autosave.csv.abc.tmp",
    )
    for f in (stale, fresh, other):
        f.write_text("tile_index,x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    AnnotationAutosaver(path).close()
    assert not stale.exists()  # left by a killed process an hour ago
    assert fresh.exists() and other.exists()  # maybe being written right now; another stack's
