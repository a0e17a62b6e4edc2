"""Importing TensorFlow without its start-up noise."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """TensorFlow's C++ start-up lines (oneDNN, CUDA drivers, absl) go to the process's stderr before any
    setting can stop them: import it once with file descriptor 2 pointed at /dev/null."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # imported, or --verbose
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    # TensorFlow's Python warnings are not the user's business either: a checkpoint that does not fit its config
    # (an edited architecture) is one error line of ours, followed by 100+ "Value in checkpoint could not be
    # found" lines from TensorFlow's own logger when the failed restore is collected
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
