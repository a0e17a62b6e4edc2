"""The training batches of the 2D models: the stored slices of the training split, degraded on the fly."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.data.pipeline import slice_dataset, train_pairs


def slice_batches(config, data_dir: Path, roi: str = "full"):
    """Batches of aligned (LR, HR) patches of ``roi`` slices, as ``config.data`` and ``config.degradation`` say."""
    d = config.data
    slices = slice_dataset(data_dir, roi, "train", shuffle_files=True)
    return train_pairs(
        slices,
        d.patch,
        batch_size=d.batch_size,
        patches_per_slice=d.patches_per_slice,
        shuffle_buffer=d.shuffle_buffer,
        degradation=config.degradation,
    )
