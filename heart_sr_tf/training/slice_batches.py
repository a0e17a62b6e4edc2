"""The training batches of the 2D models: the stored slices of the training split, degraded on the fly."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.data.pipeline import num_slices, slice_dataset, train_pairs
from heart_sr_tf.errors import DataError


def slice_batches(config, data_dir: Path, roi: str = "full"):
    """Batches of aligned (LR, HR) patches of ``roi`` slices, as ``config.data`` and ``config.degradation`` say."""
    d = config.data
    check_rois(data_dir, [roi])
    slices = slice_dataset(data_dir, roi, "train", shuffle_files=True)
    return train_pairs(
        slices,
        d.patch,
        batch_size=d.batch_size,
        patches_per_slice=d.patches_per_slice,
        shuffle_buffer=d.shuffle_buffer,
        degradation=config.degradation,
    )


def check_rois(data_dir: Path, rois) -> None:
    """Refuse, before any training, a stage whose roi has no training slice: repeating nothing would wait forever
    for a first batch (a dataset prepared from scans without labels has no heart boxes)."""
    for roi in dict.fromkeys(rois):
        if num_slices(data_dir, roi, "train") == 0:
            raise DataError(
                data_dir,
                f"no training slices of roi {roi!r} (without labels there are no heart boxes): prepare the scans "
                "with `prepare --scans ... --heart-boxes` (a segmenter draws them), or train every stage on roi "
                '"full" (a config\'s [[train.stages]])',
            )
