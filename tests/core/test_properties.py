"""Property-based guard: generated tile stacks, settings and files either work or get our own error.

"Our own" means: an exception class of napari-tsimcne (or a ``ValueError`` for a bad setting) raised by
napari-tsimcne's code, with a message, never one escaping from NumPy, PyTorch or scikit-learn; and on
the command line, a known exit code with one line of explanation, and no file written besides those asked for.
Training is a no-op here (every check comes before the first step), so each example takes milliseconds
to a second.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import napari_tsimcne.cli as cli
from napari_tsimcne import TSimCNE
from napari_tsimcne.core import training
from napari_tsimcne.core.persistence import ModelFileError
from napari_tsimcne.core.tiles import TileStackError

FAST = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
TINY = dict(
    backbone="resnet10",
    width=4,
    batch_size=2,
    total_epochs=(1, 0, 0),
    random_state=0,
    device="cpu",
    preview_every=0,
)
EXIT_CODES = {0, 1, 2, 3, 4, 5}


def _raised_by_us(exc: BaseException) -> bool:
    """The innermost frame of the exception's traceback is napari-tsimcne's code."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{os.sep}napari_tsimcne{os.sep}" in tb.tb_frame.f_code.co_filename


def _assert_ours(exc: BaseException, allowed: tuple[type, ...]) -> None:
    detail = "".join(traceback.format_exception(exc))
    assert isinstance(exc, allowed), detail
    assert str(exc).strip(), detail
    assert _raised_by_us(exc), detail


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    monkeypatch.setattr(training.Trainer, "run", lambda self, stop=None: iter(()))


DTYPES = st.sampled_from(
    [
        np.uint8,
        np.uint16,
        np.int16,
        np.int64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
        ">f4",
    ]
)


@st.composite
def any_arrays(draw) -> np.ndarray:
    """Small arrays of every rank, size and dtype; float values include NaN, infinity and extremes."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=12))
    return draw(_arrays(shape))


@st.composite
def near_stacks(draw) -> np.ndarray:
    """Shapes around the valid ones: 1 to 12 tiles of 6 to 12 pixels, no channel axis or 1 to 5 channels."""
    shape = (draw(st.integers(1, 12)), draw(st.integers(6, 12)), draw(st.integers(6, 12)))
    shape += draw(st.sampled_from([(), (1,), (2,), (3,), (5,)]))
    if draw(
        st.booleans()
    ):  # varied pixels, which hypothesis's own arrays (mostly constant) rarely have
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return (rng.random(shape) * 255).astype(draw(DTYPES))
    return draw(_arrays(shape))


def stacks() -> st.SearchStrategy:
    return st.one_of(any_arrays(), near_stacks())


@st.composite
def _arrays(draw, shape: tuple[int, ...]) -> np.ndarray:
    if int(np.prod(shape)) > 20_000:
        shape = shape[:2]
    dtype = np.dtype(draw(DTYPES))
    elements = None
    if dtype.kind == "f":
        elements = st.floats(width=min(64, dtype.itemsize * 8), allow_nan=True, allow_infinity=True)
    return draw(
        hnp.arrays(dtype, shape, elements=elements, fill=st.nothing() if elements is None else None)
    )


@FAST
@given(x=stacks(), channel_axis=st.none() | st.integers(-6, 6))
def test_fit_on_any_array_works_or_says_why(x, channel_axis):
    try:
        TSimCNE(**TINY).fit_iter(x, channel_axis=channel_axis).close()
    except Exception as exc:  # noqa: BLE001 - checked below
        _assert_ours(exc, (TileStackError, ValueError))


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    m = TSimCNE(**TINY)
    m.fit_iter(rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)).close()
    return m


@FAST
@given(x=stacks())
def test_transform_of_any_array_works_or_says_why(model, x):
    try:
        y = model.transform(x)
    except Exception as exc:  # noqa: BLE001
        _assert_ours(exc, (TileStackError, ValueError))
    else:
        assert y.shape == (len(x), 2) and np.isfinite(y).all()


SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "total_epochs": st.one_of(
            st.tuples(*[st.integers(-2, 3)] * 3),
            st.lists(st.integers(0, 2), max_size=4),
            st.just("auto"),
            st.just((1.5, 0, 0)),
        ),
        "batch_size": st.one_of(st.integers(-1, 40), st.just(2.0), st.just("auto"), st.just(True)),
        "width": st.one_of(st.integers(-1, 8), st.just("auto")),
        "lr": st.one_of(st.floats(allow_nan=True), st.just("auto"), st.none()),
        "momentum": st.floats(-1, 2),
        "weight_decay": st.floats(-1, 1),
        "grad_clip": st.one_of(st.none(), st.floats(-1, 5), st.just("a")),
        "random_state": st.one_of(st.none(), st.integers(-1, 2**64)),
        "embed_batch_size": st.integers(-1, 4),
        "out_dim": st.integers(0, 4),
        "warmup": st.one_of(st.integers(-1, 3), st.just("auto")),
        "init_2d": st.sampled_from(["pca", "random", "svd"]),
        "augmentations": st.sampled_from(["microscopy", "natural", "quantitative", "auto", "none"]),
    },
)


@FAST
@given(params=SETTINGS)
def test_any_settings_work_or_say_why(params):
    x = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    try:
        TSimCNE(**{**TINY, **params}).fit_iter(x).close()
    except Exception as exc:  # noqa: BLE001
        _assert_ours(exc, (ValueError,))


@pytest.fixture(scope="module")
def model_bytes(model, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("m") / "model.tsimcne"
    model.save(path)
    return path.read_bytes()


@st.composite
def damaged(draw, blob: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        return blob[: draw(st.integers(0, len(blob) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=2000))
    data = bytearray(blob)
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


def test_damaged_model_files_load_or_raise_model_file_error(model_bytes, tmp_path):
    path = tmp_path / "damaged.tsimcne"

    @FAST
    @given(blob=damaged(model_bytes))
    def check(blob):
        path.write_bytes(blob)
        try:
            TSimCNE.load(path, device="cpu")
        except Exception as exc:  # noqa: BLE001
            _assert_ours(exc, (ModelFileError,))

    check()


def _run_cli(argv: list[str], monkeypatch) -> tuple[int, str]:
    """Run the command line; every error it reports must come from our code."""
    seen: list[BaseException] = []
    real_error = cli._error

    def error(message, code):
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, SystemExit):
            seen.append(exc)
        return real_error(message, code)

    monkeypatch.setattr(cli, "_error", error)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(argv)
    for exc in seen:
        assert _raised_by_us(exc), "".join(traceback.format_exception(exc))
    return code, err.getvalue()


def _snapshot(folder: Path) -> dict[str, float]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@settings(FAST, max_examples=25)
@given(
    x=stacks(),
    flags=st.lists(
        st.sampled_from(
            [
                ["--channel-axis", "1"],
                ["--channel-axis", "-9"],
                ["--tile-size", "8"],
                ["--tile-size", "0"],
                ["--seed", str(2**63)],
                ["--batch-size", "1"],
            ]
        ),
        max_size=2,
    ),
)
def test_cli_fit_on_any_array(x, flags, tmp_path_factory, monkeypatch):
    work = tmp_path_factory.mktemp("fit")
    np.save(work / "in.npy", x)
    before = _snapshot(work)
    argv = [
        "fit",
        str(work / "in.npy"),
        "-o",
        str(work / "out"),
        "--backbone",
        "resnet10",
        "--width",
        "4",
        "--batch-size",
        "2",
        "--epochs",
        "1",
        "0",
        "0",
        "--device",
        "cpu",
        "--quiet",
        *sum(flags, []),
    ]
    code, err = _run_cli(argv, monkeypatch)
    assert code in EXIT_CODES, err
    if code != 0:
        assert "Traceback" not in err and err.strip(), err
        assert err.count("error:") == 1, err
    after = _snapshot(work)
    assert {
        k: v for k, v in after.items() if not k.startswith("out")
    } == before  # the input is untouched
    written = sorted(k for k in after if k.startswith("out" + os.sep))
    if code == 0:
        assert written == [f"out{os.sep}{n}" for n in sorted(cli.RESULTS)], written
    else:
        assert not written, written  # nothing written on failure


@settings(FAST, max_examples=25)
@given(
    blob=st.binary(max_size=600),
    suffix=st.sampled_from([".csv", ".npy", ".npz", ".png", ".tif", ".tsimcne"]),
)
def test_cli_on_any_file_content(blob, suffix, tmp_path_factory, monkeypatch):
    work = tmp_path_factory.mktemp("bytes")
    path = work / f"f{suffix}"
    path.write_bytes(blob)
    for argv in (
        ["evaluate", str(path)],
        ["embed", str(path), str(path), "-o", str(work / "e.csv"), "--quiet"],
        [
            "fit",
            str(path),
            "-o",
            str(work / "out"),
            "--epochs",
            "1",
            "0",
            "0",
            "--device",
            "cpu",
            "--quiet",
        ],
    ):
        code, err = _run_cli(argv, monkeypatch)
        assert code in EXIT_CODES, err
        assert code == 0 or ("Traceback" not in err and err.count("error:") == 1), err
        assert path.read_bytes() == blob
