"""``napari-tsimcne demo``: a napari window with the sample tiles and the plugin's widgets."""

from __future__ import annotations


def run_demo_viewer() -> None:
    """Open napari with the sample tiles and the Train/Annotate widgets docked; blocks until closed.

    Without a GPU the sample and the Train widget's settings are sized for the CPU (``CPU_DEMO``),
    so that pressing Train shows a map within minutes.
    """
    import napari
    import torch._dynamo  # noqa: F401  (before napari's OpenGL: see torch_runtime.preload_torch)
    from napari.utils.notifications import show_info

    from napari_tsimcne.core.device import resolve_device
    from napari_tsimcne.core.sample import CPU_DEMO, load_sample

    from .sample_data import tiles_layer_data

    on_cpu = resolve_device("auto").type == "cpu"
    viewer = napari.Viewer(title="t-SimCNE demo")
    data, kwargs, _ = tiles_layer_data(load_sample(n_tiles=CPU_DEMO["n_tiles"]) if on_cpu else load_sample())
    viewer.add_image(data, **kwargs)
    _, train = viewer.window.add_plugin_dock_widget("napari-tsimcne", "Train map")
    viewer.window.add_plugin_dock_widget("napari-tsimcne", "Annotate map")
    if on_cpu:
        train.apply_settings(epochs=CPU_DEMO["epochs"], batch_size=CPU_DEMO["batch_size"], width=CPU_DEMO["width"])
        show_info(f"No GPU here: the demo uses {len(data):,} tiles and a narrower network (width "
                  f"{CPU_DEMO['width']}), so that training takes minutes on the CPU.")
    napari.run()
