"""``napari-tsimcne demo``: a napari window with the sample tiles and the plugin's widgets."""

from __future__ import annotations


def run_demo_viewer() -> None:
    """Open napari with the sample tiles and the Train/Annotate widgets docked; blocks until closed.

    The Train widget starts with the settings for the device it finds: without a GPU, the CPU's
    network and a time budget of about 10 minutes for all sample tiles.
    """
    import napari
    import torch._dynamo  # noqa: F401  (before napari's OpenGL: see torch_runtime.preload_torch)
    from napari.utils.notifications import show_info

    from napari_tsimcne.core.device import resolve_device
    from napari_tsimcne.core.sample import load_sample

    from .sample_data import tiles_layer_data

    on_cpu = resolve_device("auto").type == "cpu"
    viewer = napari.Viewer(title="t-SimCNE demo")
    data, kwargs, _ = tiles_layer_data(load_sample(n_tiles=None))
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    if on_cpu:
        show_info(
            f"No GPU here: the Train widget is set for the CPU ({train.form.backbone_combo.value}, "
            f"width {train.form.width_spin.value}) and about {train.form.minutes_spin.value:.0f} minutes for "
            f"all {len(data):,} tiles."
        )
    napari.run()
