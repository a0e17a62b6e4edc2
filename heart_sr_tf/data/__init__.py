"""Data layer: NIfTI files in, normalised 2D/3D tensors out."""
