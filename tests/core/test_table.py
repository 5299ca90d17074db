"""One schema for the map, annotation and autosave tables: files of earlier versions load, values round-trip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_tsimcne.core.io import InputFileError, read_embedding_csv, write_embedding_csv
from napari_tsimcne.core.table import (
    COLUMNS,
    AnnotationFileError,
    map_table,
    read_annotations,
    read_embedding,
    read_table,
    write_table,
)

# embedding.csv as versions before the shared table module wrote it: Python's csv module (\r\n line ends),
# floats as repr() of the float64 of a float32 map, origins, integer labels
OLD_EMBEDDING = (
    "tile_index,x,y,origin_row,origin_col,label\r\n"
    "0,0.1257302165031433,-0.13210485875606537,2943,4766,4\r\n"
    "1,0.6404226422309875,0.10490011423826218,4059,458,7\r\n"
    "2,nan,1e-05,0,16,0\r\n"
)
# annotations.csv as the Annotate widget exported it (pandas, \n line ends), 3D, with a fingerprint
OLD_ANNOTATIONS = (
    "tile_index,x,y,z,origin_row,origin_col,label,annotation,cluster,outlier,stack_fingerprint\n"
    "2,0.5,0.25,1.0,0,32,B,,-1,0.8,0123456789abcdef\n"
    "0,0.1,0.2,0.3,0,0,A,stroma,1,1.2,0123456789abcdef\n"
    '1,-1.5,2.0,0.0,0,16,A,"nuclei, dense",0,3.5,0123456789abcdef\n'
)


def test_an_embedding_written_by_the_csv_module_loads(tmp_path):
    path = tmp_path / "embedding.csv"
    path.write_bytes(OLD_EMBEDDING.encode())
    table = read_embedding_csv(path)
    assert table.embedding.dtype == np.float64 and table.embedding.shape == (3, 2)
    assert table.embedding[0, 0] == 0.1257302165031433  # exactly, not to 15 digits
    assert np.isnan(table.embedding[2, 0]) and table.embedding[2, 1] == 1e-05
    np.testing.assert_array_equal(table.origins, [[2943, 4766], [4059, 458], [0, 16]])
    assert table.origins.dtype == np.int64
    np.testing.assert_array_equal(table.labels, [4, 7, 0])
    assert table.labels.dtype == np.int64


def test_an_annotation_export_of_today_loads(tmp_path):
    path = tmp_path / "annotations.csv"
    path.write_text(OLD_ANNOTATIONS)
    table = read_annotations(path, 3, "0123456789abcdef")
    assert list(table["annotation"]) == ["stroma", "nuclei, dense", ""]
    assert list(table["cluster"]) == [1, 0, -1]
    with pytest.raises(AnnotationFileError, match="another tile stack"):
        read_annotations(path, 3, "fedcba9876543210")
    emb = read_embedding(path)  # the same schema: an export is a map too
    np.testing.assert_array_equal(emb.embedding[0], [0.5, 0.25, 1.0])
    assert emb.labels.tolist() == ["B", "A", "A"]


@pytest.mark.parametrize("ndim", [2, 3])
def test_a_map_round_trips_exactly(tmp_path, ndim):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(500, ndim)).astype(np.float32)
    emb[3, 0], emb[4, 1] = np.inf, 1e-30
    origins = rng.integers(0, 10_000, size=(500, 2))
    labels = np.array(["a cell", "NA", "", "x,y"] * 125)
    path = write_embedding_csv(tmp_path / "e.csv", emb, origins=origins, labels=labels)
    back = read_embedding_csv(path)
    np.testing.assert_array_equal(back.embedding, emb.astype(np.float64))
    np.testing.assert_array_equal(back.origins, origins)
    assert back.labels.tolist() == labels.tolist()  # "NA" and "" stay text, not missing values
    header = path.read_text().splitlines()[0].split(",")
    assert header == [c for c in COLUMNS if c in header]  # the schema's order
    assert header[: 1 + ndim] == ["tile_index", "x", "y", "z"][: 1 + ndim]


def test_tables_are_written_in_the_schemas_order(tmp_path):
    table = map_table(np.zeros((2, 2)), cluster=[0, 1], annotation=["a", "b"], fingerprint="f" * 16)
    write_table(tmp_path / "t.csv", table[table.columns[::-1]])
    assert pd.read_csv(tmp_path / "t.csv").columns.tolist() == [
        "tile_index",
        "x",
        "y",
        "annotation",
        "cluster",
        "stack_fingerprint",
    ]


def test_a_column_of_another_length_is_refused():
    with pytest.raises(ValueError, match="All columns need 3 rows, got one with 2"):
        map_table(np.zeros((3, 2)), labels=[1, 2])


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "is empty"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}\xff\xfe", "not a CSV text file"),
        (b"tile_index,x,y\n0,1,2\n1,2,3,4\n", "row 3 has 4 cells, but the header has 3"),
        (b"tile_index,x,y\n0,1,2\n1,2\n", "row 3 has 2 cells, but the header has 3"),
        (b"tile_index,x,y\n0,1,2\n1,a,3\n", "not a number"),
        (b"tile_index,x,y\n0,1,2\n1,,3\n", "empty cell in column x"),
        (b"tile_index,a,b\n0,1,2\n", "no x and y columns"),
    ],
    ids=["empty", "binary", "long-row", "short-row", "text", "empty-cell", "no-xy"],
)
def test_bad_embedding_files_get_one_line(tmp_path, content, words):
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=words) as info:
        read_embedding_csv(path)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputFileError, match="No such embedding file"):
        read_embedding_csv(tmp_path / "gone.csv")


def test_labels_are_numbers_only_when_all_are_whole_numbers(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("x,y,label\n0,0,1\n1,1,1.5\n")
    assert read_embedding(path).labels.tolist() == ["1", "1.5"]
    path.write_text("x,y,label\n0,0,-1\n1,1,12\n")
    assert read_embedding(path).labels.tolist() == [-1, 12]


def test_annotation_tables_say_what_is_wrong(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("tile_index,annotation\n0,a\n0,b\n")
    with pytest.raises(AnnotationFileError, match="exactly once"):
        read_annotations(path, 2)
    with pytest.raises(AnnotationFileError, match="annotates 2 tiles, but the map has 3"):
        read_annotations(path, 3)
    path.write_text("tile_index,x\n0,1\n")
    with pytest.raises(AnnotationFileError, match="is it an annotation export"):
        read_annotations(path, 1)
    path.write_text("tile_index,annotation,cluster\n0,a,inf\n1,b,2\n")
    assert read_annotations(path, 2)["cluster"].tolist() == [-1, 2]  # not a cluster number: none


def test_all_text_keeps_every_cell_as_written(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("id,label\n007,1.50\n")
    table = read_table(path, all_text=True)
    assert table.iloc[0].tolist() == ["007", "1.50"]
