"""Satellite tiles: opening and validating rasters, catalogue, windows and masks."""
