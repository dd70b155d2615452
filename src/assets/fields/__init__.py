"""Vector side: field boundaries (validation, reprojection, areas) and polygonised model output."""
