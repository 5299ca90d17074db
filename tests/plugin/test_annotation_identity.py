"""Annotation files name their tile stack: files of other tiles with the same count are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.core.fingerprint import fingerprint
from napari_tsimcne.plugin import autosave
from napari_tsimcne.plugin.annotations import (
    FINGERPRINT_COLUMN,
    AnnotationFileError,
    export_csv,
    import_csv,
)

N = 20


@pytest.fixture
def features() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "tile_index": np.arange(N),
            "x": rng.normal(size=N),
            "y": rng.normal(size=N),
            "annotation": ["a"] * 10 + [""] * 10,
            "cluster": [-1] * N,
        }
    )


@pytest.fixture
def stacks() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (N, 8, 8, 3), dtype=np.uint8)
    return tiles, tiles[::-1].copy()


def test_export_names_the_stack_and_import_refuses_other_tiles(features, stacks, tmp_path):
    mine, other = (autosave.stack_fingerprint(t) for t in stacks)
    export_csv(features, tmp_path / "a.csv", fingerprint=mine)
    assert set(pd.read_csv(tmp_path / "a.csv")[FINGERPRINT_COLUMN]) == {mine}
    assert list(import_csv(tmp_path / "a.csv", N, mine)["annotation"][:10]) == ["a"] * 10
    with pytest.raises(AnnotationFileError, match="another tile stack"):
        import_csv(tmp_path / "a.csv", N, other)


def test_files_without_a_fingerprint_are_checked_by_count_only(features, stacks, tmp_path):
    export_csv(features, tmp_path / "old.csv")  # as written before fingerprints
    assert FINGERPRINT_COLUMN not in pd.read_csv(tmp_path / "old.csv").columns
    import_csv(tmp_path / "old.csv", N, autosave.stack_fingerprint(stacks[1]))


def test_the_plugin_and_the_library_share_one_fingerprint(stacks):
    assert autosave.stack_fingerprint(stacks[0]) == fingerprint(stacks[0]).digest


def test_autosave_files_carry_their_fingerprint(features, stacks, tmp_path):
    digest = autosave.stack_fingerprint(stacks[0])
    saver = autosave.AnnotationAutosaver(autosave.autosave_path("tiles", digest, tmp_path))
    saver.save(features)
    saver.flush()
    saver.close()
    assert set(pd.read_csv(saver.path)[FINGERPRINT_COLUMN]) == {digest}
    assert len(autosave.load_autosave(saver.path, digest, N)) == N


def test_reader_skips_annotations_of_other_tiles(tmp_path, monkeypatch):
    from napari_tsimcne import cli
    from napari_tsimcne.core import training
    from napari_tsimcne.core.sample import load_histology
    from napari_tsimcne.plugin.reader import read_output

    monkeypatch.setattr(
        training.Trainer, "run", lambda self, stop=None: iter(())
    )  # no training: the outputs are enough
    tiles = np.ascontiguousarray(load_histology().tiles[:64, :16, :16])
    np.save(tmp_path / "t.npy", tiles)
    assert (
        cli.main(
            [
                "fit",
                str(tmp_path / "t.npy"),
                "-o",
                str(tmp_path / "out"),
                "--epochs",
                "1",
                "0",
                "0",
                "--batch-size",
                "32",
                "--width",
                "8",
                "--backbone",
                "resnet10",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    feats = pd.DataFrame(
        {"tile_index": np.arange(64), "x": 0.0, "y": 0.0, "annotation": "x", "cluster": -1}
    )
    export_csv(
        feats,
        tmp_path / "out" / "annotations.csv",
        fingerprint=autosave.stack_fingerprint(tiles[::-1]),
    )
    with pytest.warns(UserWarning, match="another tile stack"):
        layers = read_output(tmp_path / "out")
    assert (layers[-1][1]["features"]["annotation"] == "").all()
    export_csv(
        feats, tmp_path / "out" / "annotations.csv", fingerprint=autosave.stack_fingerprint(tiles)
    )
    assert (read_output(tmp_path / "out")[-1][1]["features"]["annotation"] == "x").all()


def test_any_file_content_imports_or_raises_annotation_file_error(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    path = tmp_path / "a.csv"
    header = "tile_index,x,y,annotation,cluster,stack_fingerprint\n"
    rows = st.lists(
        st.tuples(
            st.integers(-2, N + 2),
            st.text(max_size=5),
            st.text(max_size=5),
            st.text(max_size=8),
            st.text(max_size=3),
            st.text(max_size=17),
        ),
        max_size=N + 2,
    )

    every_tile = st.permutations(range(N)).flatmap(
        lambda order: st.tuples(
            *[
                st.tuples(
                    st.just(i),
                    st.floats(),
                    st.floats(),
                    st.text(max_size=8),
                    st.text(max_size=3),
                    st.sampled_from(["0123456789abcdef", "fedcba9876543210", ""]),
                )
                for i in order
            ]
        )
    )

    def csv_text(rs) -> bytes:
        import csv
        import io

        out = io.StringIO()
        out.write(header)
        csv.writer(out).writerows(rs)
        return out.getvalue().encode("utf-8", "surrogatepass")

    @settings(
        max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(content=st.one_of(st.binary(max_size=400), rows.map(csv_text), every_tile.map(csv_text)))
    def check(content):
        path.write_bytes(content)
        try:
            table = import_csv(path, N, "0123456789abcdef")
        except AnnotationFileError as exc:
            assert str(exc)
        else:
            assert len(table) == N

    check()
