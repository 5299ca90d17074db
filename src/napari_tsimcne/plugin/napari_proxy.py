"""napari hands plugins its objects wrapped in a PublicOnlyProxy; identity checks need the object behind it."""

from __future__ import annotations


def unwrap(obj):
    """The object behind napari's PublicOnlyProxy (or ``obj`` itself when it is not wrapped)."""
    return getattr(obj, "__wrapped__", obj)
