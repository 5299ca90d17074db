"""The napari side of napari-tsimcne: dock widgets, sample data and the map/tile cross-selection."""
