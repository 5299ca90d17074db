"""What each parameter of ``TSimCNE`` accepts, in one table.

Every rule names the values it accepts in words, and a bad value raises a
``ParameterError`` that says ``<name> must be <accepted values>, got
<value>.`` The messages name the Python parameter (``batch_size``); the command
line shows its own option names (``--batch-size``) instead. This module does
not import PyTorch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backbones import BACKBONES
from .presets import PRESETS


class NamedParametersError(ValueError):
    """An error whose message names parameters as in Python (``batch_size=``, ``channel_axis=1``).

    Parameters
    ----------
    message : str
        What is wrong and what to do.
    *parameters : str
        The names of the parameters the message speaks of.

    Attributes
    ----------
    parameters : tuple of str
        Those names; a front end that names its settings differently (the command line's
        ``--batch-size``) translates them.
    """

    def __init__(self, message: str = "", *parameters: str) -> None:
        super().__init__(message)
        self.parameters = parameters


class ParameterError(NamedParametersError):
    """A parameter holds a value it cannot take.

    Parameters
    ----------
    message : str
        What is wrong and what to change, naming the parameters as in Python (``batch_size=``).
    *parameters : str
        The names of the parameters at fault.

    Attributes
    ----------
    parameters : tuple of str
        The names of the parameters at fault; a front end that names its settings
        differently (the command line's ``--batch-size``) translates them.
    """


def is_auto(value: Any) -> bool:
    """Whether ``value`` is the string ``"auto"``.

    Parameters
    ----------
    value : Any
        Any parameter value.

    Returns
    -------
    bool
        True for ``"auto"`` only (not for arrays or other strings).
    """
    return isinstance(value, str) and value == "auto"


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number that is not a bool (``True`` is not a learning rate).

    Parameters
    ----------
    value : Any
        Any parameter value.

    Returns
    -------
    bool
        True for Python and NumPy integers and floats (NaN and infinities included).
    """
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def is_whole(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy integer that is not a bool.

    Parameters
    ----------
    value : Any
        Any parameter value.

    Returns
    -------
    bool
        True for ``3`` or ``np.int64(3)``; False for ``3.0`` and ``True``.
    """
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Rule:
    """The values one parameter accepts.

    Parameters
    ----------
    accepts : callable
        ``accepts(value) -> bool``.
    expected : str
        The accepted values in words, completing "``name`` must be ...".
    """

    accepts: Callable[[Any], bool]
    expected: str


def _whole_from(low: int, high: int | None = None) -> Callable[[Any], bool]:
    return lambda v: is_whole(v) and v >= low and (high is None or v <= high)


def _auto_or(accepts: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: is_auto(v) or accepts(v)


def _positive(v: Any) -> bool:
    return is_number(v) and math.isfinite(v) and v > 0


def _epochs(v: Any) -> bool:
    return (
        isinstance(v, (tuple, list, np.ndarray))
        and len(v) == 3
        and all((is_whole(e) or (is_number(e) and float(e).is_integer())) and e >= 0 for e in v)
    )


def _augmentations(v: Any) -> bool:
    from .augment import AugmentationSettings  # imports PyTorch

    return isinstance(v, (str, dict, AugmentationSettings))  # preset names: checked on use


DEVICES = ("auto", "cuda", "mps", "cpu")
"""The device names ``device=`` takes (also ``"cuda:N"`` for GPU number N): ``"auto"`` takes CUDA,
then Apple's MPS, then the CPU."""


def _device(v: Any) -> bool:
    names = "|".join(d for d in DEVICES if d != "cuda")
    return isinstance(v, str) and re.fullmatch(rf"{names}|cuda(:\d+)?", v.lower()) is not None


RULES: dict[str, Rule] = {
    "total_epochs": Rule(
        _auto_or(_epochs),
        "three non-negative whole numbers (pre-training, last layer, fine-tuning) or 'auto'",
    ),
    "batch_size": Rule(_auto_or(_whole_from(2)), "a whole number of at least 2 or 'auto'"),
    "augmentations": Rule(
        _augmentations,
        f"'auto', a preset name ({', '.join(map(repr, PRESETS))}) or an AugmentationSettings",
    ),
    "device": Rule(_device, f"{', '.join(map(repr, DEVICES))} or 'cuda:N'"),
    "random_state": Rule(
        lambda v: v is None or _whole_from(0, 2**63 - 1)(v),
        "None or a whole number from 0 to 2**63 - 1",
    ),
    "out_dim": Rule(lambda v: is_whole(v) and v in (2, 3), "2 (a map) or 3 (a 3D point cloud)"),
    "pretrain_dim": Rule(_whole_from(2), "a whole number of at least 2"),
    "backbone": Rule(
        lambda v: is_auto(v) or (isinstance(v, str) and v in BACKBONES),
        f"one of {sorted(BACKBONES)} or 'auto'",
    ),
    "width": Rule(_auto_or(_whole_from(4)), "a whole number of at least 4 or 'auto'"),
    "lr": Rule(_auto_or(_positive), "a positive number or 'auto'"),
    "finetune_lr": Rule(_auto_or(_positive), "a positive number or 'auto'"),
    "warmup": Rule(_auto_or(_whole_from(0)), "'auto' or a non-negative whole number"),
    "momentum": Rule(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": Rule(
        lambda v: is_number(v) and math.isfinite(v) and v >= 0, "a non-negative number"
    ),
    "grad_clip": Rule(lambda v: v is None or _positive(v), "a positive number or None"),
    "preview_every": Rule(
        _auto_or(_whole_from(0)), "'auto' or a non-negative whole number (0: never)"
    ),
    "embed_batch_size": Rule(_auto_or(_whole_from(1)), "a positive whole number or 'auto'"),
    "init_2d": Rule(lambda v: isinstance(v, str) and v in ("pca", "random"), "'pca' or 'random'"),
    "finish": Rule(
        lambda v: isinstance(v, str) and v in ("auto", "contrastive", "tsne"),
        "'auto', 'contrastive' or 'tsne'",
    ),
    "time_budget": Rule(
        lambda v: v is None or _auto_or(_positive)(v),
        "a positive number of seconds, 'auto' or None",
    ),
}
"""Parameter name -> the values it accepts; the parameters of ``TSimCNE``, in its order."""


def check_parameter(name: str, value: Any) -> None:
    """Check one parameter against its rule in ``RULES``.

    Parameters
    ----------
    name : str
        A key of ``RULES``.
    value : Any
        The value given.

    Raises
    ------
    ParameterError
        ``"<name> must be <accepted values>, got <value>."`` when the rule refuses ``value``.
    """
    rule = RULES[name]
    if not rule.accepts(value):
        raise ParameterError(f"{name} must be {rule.expected}, got {value!r}.", name)


def check_parameters(params: Mapping[str, Any]) -> None:
    """Check every parameter of ``params`` that ``RULES`` knows, in the table's order.

    Parameters
    ----------
    params : mapping
        Parameter name -> value, e.g. ``TSimCNE(...).get_params()``.

    Raises
    ------
    ParameterError
        For the first value that its rule refuses.
    """
    for name in RULES:
        if name in params:
            check_parameter(name, params[name])
