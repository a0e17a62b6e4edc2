"""Exported generators: SavedModel export, loading, NIfTI upscaling, TF Serving REST client."""
