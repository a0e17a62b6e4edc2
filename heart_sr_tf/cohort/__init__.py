"""Whole cohorts: ``upscale`` over thousands of scans as tasks on a Dask cluster, resumable from a status file."""
