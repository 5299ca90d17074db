"""The documentation site builds without warnings, with an API reference generated from the docstrings."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip(
        "mkdocs", reason="mkdocs is not installed; the documentation build is not checked"
    )
    pytest.importorskip(
        "mkdocstrings", reason="mkdocstrings is not installed (the testing extra installs it)"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "cli" / "index.html").is_file()
    # the API reference is generated from the code, not copied by hand
    api = (tmp_path / "api" / "index.html").read_text()
    assert 'id="napari_tsimcne.TSimCNE"' in api and "total_epochs" in api
    assert 'id="napari_tsimcne.plugin.training_session.TrainingSession"' in api
    assert (tmp_path / "architecture" / "index.html").is_file()


# --- every public name has a numpydoc docstring -------------------------------------------

DOCUMENTED_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(
        importlib.import_module("napari_tsimcne").__path__, "napari_tsimcne."
    )
    if not info.name.endswith("__main__")
)
"""Every module of the package (the command-line tool, the core and the plugin)."""

# Being documented: public names whose docstrings do not have their numpydoc sections yet.
# Empty this list as they get them; a name here is not checked at all.
NOT_YET_DOCUMENTED: set[str] = set()

SECTION = re.compile(r"^[ \t]*([A-Z][A-Za-z ]+)\n[ \t]*-{3,}[ \t]*$", re.M)


def sections(doc: str | None) -> set[str]:
    """The numpydoc section headers (``Parameters``, ``Returns``, ...) of a docstring."""
    return set(SECTION.findall(doc or ""))


def parameters(obj) -> list[str]:
    """The parameter names a caller passes (without ``self`` and ``cls``)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have no signature
        return []
    return [p for p in signature.parameters if p not in ("self", "cls")]


def overrides(cls: type, name: str) -> bool:
    """Whether ``cls.name`` overrides a method of a base class (Qt, PyTorch, ...).

    An override keeps the contract documented by the base class (``forward``, ``event``,
    ``resizeEvent``), so it does not need a docstring of its own.
    """
    return any(name in vars(base) for base in cls.__mro__[1:])


def public_objects(module_name: str):
    """``(qualified name, object)`` for the public functions, classes and methods of a module."""
    module = importlib.import_module(module_name)
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        yield f"{module_name}.{name}", obj
        if inspect.isclass(obj):
            yield from public_members(f"{module_name}.{name}", obj)


def public_members(qualname: str, cls: type):
    """The public methods and properties a class defines itself (not those it overrides)."""
    for attr, value in vars(cls).items():
        if attr.startswith("_") or overrides(cls, attr):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if inspect.isfunction(value) or isinstance(value, property):
            yield f"{qualname}.{attr}", value


def all_public_objects() -> dict[str, object]:
    """The public names of the package (``napari_tsimcne.__all__``) and of the modules above."""
    import napari_tsimcne

    found: dict[str, object] = {}
    for name in napari_tsimcne.__all__:
        obj = getattr(napari_tsimcne, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            found[f"{obj.__module__}.{obj.__qualname__}"] = obj
            if inspect.isclass(obj):
                found.update(public_members(f"{obj.__module__}.{obj.__qualname__}", obj))
    for module_name in DOCUMENTED_MODULES:
        found.update(public_objects(module_name))
    return found


def attribute_docstrings(cls: type) -> set[str]:
    """The fields of a class that have a docstring of their own (a string right below them)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return set()
    body = tree.body[0].body
    return {
        statement.target.id
        for statement, following in zip(body, body[1:])
        if isinstance(statement, ast.AnnAssign)
        and isinstance(statement.target, ast.Name)
        and isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    }


def docstring_problem(obj) -> str | None:
    """What is missing from an object's docstring, or None.

    A summary line always; a Parameters section when the object takes parameters; a Returns
    (or Yields) section when a function is annotated to return something.
    """
    is_property = isinstance(obj, property)
    doc = obj.__doc__
    if is_property:  # documented like an attribute: a summary, no sections needed
        obj = obj.fget
    if inspect.isclass(obj) and doc is not None and "(" in doc.split("\n", 1)[0]:
        # a class without a docstring of its own gets an automatic signature line (dataclasses)
        first = doc.split("\n", 1)[0]
        if first.startswith(obj.__name__ + "("):
            doc = None
    if not doc or not doc.strip():
        return "no docstring"
    if not doc.strip().split("\n", 1)[0].strip():
        return "no summary line"
    undocumented = parameters(obj)
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        # a dataclass's fields may each have a docstring of their own (mkdocstrings shows them)
        undocumented = [p for p in undocumented if p not in attribute_docstrings(obj)]
    if undocumented and not {"Parameters", "Attributes"} & sections(doc):
        return "no Parameters section for " + ", ".join(undocumented)
    if inspect.isfunction(obj) and not is_property:
        returns = inspect.signature(obj).return_annotation
        if returns not in (inspect.Signature.empty, None, "None") and not (
            {"Returns", "Yields"} & sections(doc)
        ):
            return f"no Returns section for its {returns}"
    return None


def test_section_parser():
    doc = """Summary.

    Parameters
    ----------
    x : int
        A number.

    Returns
    -------
    int
    """
    assert sections(doc) == {"Parameters", "Returns"}
    assert sections("Summary.\n\nParameters: x") == set()
    assert docstring_problem(lambda x: x) == "no docstring"

    def documented(x):
        """Summary.

        Parameters
        ----------
        x : int
            A number.
        """

    assert docstring_problem(documented) is None

    def undocumented_parameters(x):
        """Summary only."""

    assert docstring_problem(undocumented_parameters) == "no Parameters section for x"

    def undocumented_result(x: int) -> int:
        """Summary.

        Parameters
        ----------
        x : int
            A number.
        """
        return x

    assert docstring_problem(undocumented_result) == "no Returns section for its int"
    assert docstring_problem(property(lambda self: 1, doc="A value.")) is None


def test_public_names_have_numpydoc_docstrings():
    found = all_public_objects()
    # the walk reaches the exported names and the methods of the modules' classes
    assert len(found) > 150
    problems = [
        f"{name}: {problem}"
        for name, obj in sorted(found.items())
        if name not in NOT_YET_DOCUMENTED and (problem := docstring_problem(obj))
    ]
    assert not problems, "public names without a numpydoc docstring:\n" + "\n".join(problems)
