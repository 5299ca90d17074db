"""``napari-tsimcne demo``: a napari window with the sample tiles and the plugin's widgets."""

from __future__ import annotations


def run_demo_viewer() -> None:
    """Open napari with the sample tiles and the Train/Annotate widgets docked; blocks until closed."""
    import torch._dynamo  # noqa: F401  (before napari's OpenGL: see torch_runtime.preload_torch)

    import napari

    from .sample_data import sample_tiles

    viewer = napari.Viewer(title="t-SimCNE demo")
    for data, kwargs, _ in sample_tiles():
        viewer.add_image(data, **kwargs)
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    napari.run()
