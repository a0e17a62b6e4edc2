"""The optional packages a command needs (OpenVINO, NNCF, Dask's ``distributed``), imported with one line when they
cannot be: either the package is not installed (and how to install it), or it is installed and fails to import (and
the reason, as its import gave it). A broken install (a native library missing, a module interrupted while it
initialised) is not reported as a missing one, which a user would answer by installing it again to no effect.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.path_text import one_line


def import_extra(module: str, what: str, install: str):
    """The package ``module``, imported; ``what`` is the line's start (``--backend openvino: OpenVINO``) and
    ``install`` the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if _interrupted(exc):  # Ctrl-C while native bindings initialised: pybind11 raises ImportError from it
            raise KeyboardInterrupt from None
        if _installed(module):
            reason = one_line(str(exc).strip() or type(exc).__name__)
            raise HeartSRError(
                f"{what} is installed in {sys.executable} but does not import ({reason}); reinstall it ({install})"
            ) from None
        raise HeartSRError(f"{what} is not installed ({install})") from None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
    except (ImportError, ValueError):  # a finder that fails, or a half-initialised module left behind
        return True


def _interrupted(exc: BaseException) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
