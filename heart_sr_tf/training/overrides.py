"""Command-line overrides of a config's lengths and learning rates, checked like the file itself."""

from __future__ import annotations

import math
from pathlib import Path

from heart_sr_tf.config import WGANConfig, check
from heart_sr_tf.data.pipeline import num_slices
from heart_sr_tf.errors import ConfigError


def steps_per_epoch(data_dir: Path, config, roi: str) -> int:
    """One epoch = every training slice seen once (``patches_per_slice`` patches each)."""
    d = config.data
    return max(1, math.ceil(num_slices(data_dir, roi, "train") * d.patches_per_slice / d.batch_size))


def apply_overrides(config, data_dir: Path, steps: int | None, epochs: int | None, lr: float | None):
    """``--steps``/``--epochs`` set every SRGAN stage's length (a WGAN run's total); ``--lr`` both learning rates."""
    if steps is not None and epochs is not None:
        raise ConfigError("give --steps or --epochs, not both")
    if isinstance(config, WGANConfig):
        if steps is not None:
            config.train.steps = steps
        elif epochs is not None:
            config.train.steps = epochs * steps_per_epoch(data_dir, config, "full")
    else:
        for stage in config.train.stages:
            if steps is not None:
                stage.steps = steps
            elif epochs is not None:
                stage.steps = epochs * steps_per_epoch(data_dir, config, stage.roi)
    if lr is not None:
        config.optim.g_lr = config.optim.d_lr = lr
    check(config)
    return config
