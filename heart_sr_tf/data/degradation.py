"""The degradations that make an LR grid from an HR slice, and the paper's 3x3 block one (section 2.4),
in NumPy (reference) and TensorFlow (tf.data). The k-space degradation's own ops live in ``kspace.py``;
:class:`Degradation` names the choice and dispatches to either.

The low-resolution grid keeps the first element of every ``s x s`` block along both array
axes: ``LR[i, j] = HR[s*i, s*j]``. In the NIfTI display convention the paper used, that is the
block's lower-left corner. A 256x256 slice gives an 86x86 grid. The paper's same-size "blocky"
image is that grid repeated over each block and cut back to the HR size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # TensorFlow is imported where an op runs: reading metadata needs none
    import tensorflow as tf

from heart_sr_tf.data import kspace
from heart_sr_tf.data.interpolation import aligned_bicubic, axis_matrix
from heart_sr_tf.data.thick_slices import thick_slices, thick_slices_np
from heart_sr_tf.errors import HeartSRError

DEFAULT_SCALE = 3


class MetadataError(HeartSRError):
    """An export's metadata is missing a field or holds a value this version cannot use."""


def lr_grid_np(hr: np.ndarray, scale: int = DEFAULT_SCALE) -> np.ndarray:
    """NumPy reference: ``hr[::s, ::s]`` over the first two axes."""
    return np.asarray(hr)[::scale, ::scale]


def blocky_np(lr: np.ndarray, scale: int | tuple[int, int], hr_shape: tuple[int, int]) -> np.ndarray:
    """NumPy reference: repeat each LR sample over its block (``s x s``, or ``(rows, cols)``), cut to ``hr_shape``."""
    rows, cols = (scale, scale) if isinstance(scale, int) else scale
    out = np.repeat(np.repeat(lr, rows, axis=0), cols, axis=1)
    return out[: hr_shape[0], : hr_shape[1]]


def lr_grid(hr: tf.Tensor, scale: int = DEFAULT_SCALE) -> tf.Tensor:
    """TF op for images ``[..., H, W, C]``: the LR grid ``[..., ceil(H/s), ceil(W/s), C]``."""
    return hr[..., ::scale, ::scale, :]


KINDS = ("decimation", "kspace", "through_plane")
BASELINE_NAMES = {  # for tables
    "zero_fill": "zero-filled",
    "bicubic": "aligned bicubic",
    "blocky": "blocky LR",
    "cubic": "cubic (cv2) along the axis",
    "linear": "linear along the axis",
    "sinc": "windowed sinc along the axis",
}
DESCRIPTIONS = {
    "decimation": "decimation: LR[i, j] = HR[{s}*i, {s}*j], the first element of each {s}x{s} block (the paper's 2.4)",
    "kspace": "kspace: the central 1/{s} x 1/{s} of the HR slice's centred spectrum (HR cropped to a multiple of {s}), "
    "inverse FFT, magnitude, mean intensity kept; LR sample (i, j) sits at HR pixel ({s}*i, {s}*j)",
    "through_plane": "through_plane: thick slices along the first axis, LR[r, :] = the mean of {t} HR rows (a box "
    "profile) centred on row {s}*r, edge rows replicated; the columns untouched",
}


@dataclass(frozen=True)
class Degradation:
    """Which degradation makes an LR grid from an HR slice, with its options; the same in tf.data and NumPy.

    ``window``, ``tukey_alpha`` and ``noise`` (a sigma range on [0, 1] intensities) apply to ``kspace`` only;
    ``thickness`` (the slice profile t in rows, 0 meaning t = scale) to ``through_plane`` only, where ``scale``
    is the slice factor g along the first axis and the second axis keeps its size.
    """

    kind: str = "decimation"
    scale: int = DEFAULT_SCALE
    window: str = "none"
    tukey_alpha: float = 0.5
    noise: tuple[float, float] = (0.0, 0.0)
    thickness: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown degradation {self.kind!r}, expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "noise", (float(self.noise[0]), float(self.noise[1])))
        thickness = int(self.thickness) if self.kind == "through_plane" else 0
        object.__setattr__(self, "thickness", thickness or (self.scale if self.kind == "through_plane" else 0))

    @property
    def factors(self) -> tuple[int, int]:
        """How many HR pixels one LR sample spans along each axis."""
        return (self.scale, 1) if self.kind == "through_plane" else (self.scale, self.scale)

    @property
    def baselines(self) -> tuple[str, ...]:
        """The classical methods a model on this degradation is shown next to, the one to beat first."""
        if self.kind == "through_plane":
            return ("cubic", "linear", "sinc")
        return ("zero_fill", "bicubic") if self.kind == "kspace" else ("bicubic", "blocky")

    def pair(self, hr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """TF op on one slice ``[H, W, 1]``: ``(lr, hr)``, the HR cropped to a multiple of s for ``kspace``."""
        if self.kind == "kspace":
            return kspace.kspace_lr(hr, self.scale, self.window, self.tukey_alpha, self.noise)
        if self.kind == "through_plane":
            return thick_slices(hr, self.scale, self.thickness), hr
        return lr_grid(hr, self.scale), hr

    def pair_np(self, hr: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """NumPy reference on one 2D slice; noise (if any) drawn from ``rng``."""
        if self.kind == "kspace":
            lo, hi = self.noise
            rng = rng or np.random.default_rng(0)
            sigma = float(rng.uniform(lo, hi)) if hi > 0 else 0.0
            lr = kspace.kspace_lr_np(hr, self.scale, self.window, self.tukey_alpha, sigma, rng)
            return lr, kspace.crop_to_multiple(np.asarray(hr), self.scale)
        if self.kind == "through_plane":
            return thick_slices_np(hr, self.scale, self.thickness), np.asarray(hr)
        return lr_grid_np(hr, self.scale), np.asarray(hr)

    def pair_volume(self, hr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """TF op on one volume ``[H, W, D, 1]``: each in-plane slice degraded as :meth:`pair` degrades a slice
        (noise drawn per slice), as ``(lr [h, w, D, 1], hr [H', W', D, 1])``."""
        import tensorflow as tf

        planes = tf.transpose(tf.convert_to_tensor(hr, tf.float32), [2, 0, 1, 3])  # [D, H, W, 1]
        spec = tf.TensorSpec([None, None, 1], tf.float32)
        lr, hr = tf.map_fn(self.pair, planes, fn_output_signature=(spec, spec))
        return tf.transpose(lr, [1, 2, 0, 3]), tf.transpose(hr, [1, 2, 0, 3])

    def pair_volume_np(self, hr: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """NumPy reference on one volume ``[H, W, D]``: :meth:`pair_np` of every in-plane slice."""
        rng = rng or np.random.default_rng(0)
        pairs = [self.pair_np(hr[:, :, d], rng) for d in range(hr.shape[2])]
        return np.stack([p[0] for p in pairs], axis=2), np.stack([p[1] for p in pairs], axis=2)

    def baseline_images(self, lr: np.ndarray, hr_shape: tuple[int, int]) -> dict[str, np.ndarray]:
        """Each baseline's HR-sized image from a 2D LR grid."""
        out = {}
        for name in self.baselines:
            if self.kind == "through_plane":
                rows = axis_matrix(lr.shape[0], hr_shape[0], self.scale, name)
                out[name] = np.clip(rows @ np.asarray(lr, np.float64)[:, : hr_shape[1]], 0, 1).astype(np.float32)
            elif name == "zero_fill":
                out[name] = kspace.zero_fill_np(lr, self.scale)[: hr_shape[0], : hr_shape[1]]
            elif name == "bicubic":
                out[name] = aligned_bicubic(lr, self.scale, hr_shape)
            else:
                out[name] = blocky_np(lr, self.scale, hr_shape)
        return out

    def describe(self) -> str:
        text = DESCRIPTIONS[self.kind].format(s=self.scale, t=self.thickness)
        if self.kind == "kspace":
            if self.window != "none":
                text += f"; {self.window} window" + (f" (alpha {self.tukey_alpha:g})" if self.window == "tukey" else "")
            if self.noise[1] > 0:
                text += f"; Rician noise, sigma uniform in [{self.noise[0]:g}, {self.noise[1]:g}]"
        return text

    def metadata(self) -> dict:
        """Machine-readable fields for an export's metadata."""
        return {
            "kind": self.kind,
            "scale": self.scale,
            "window": self.window,
            "tukey_alpha": self.tukey_alpha,
            "noise_sigma": list(self.noise),
            "thickness": self.thickness,
            "factors": list(self.factors),
            "description": self.describe(),
        }

    @classmethod
    def from_metadata(cls, meta: dict, where: str = "the export") -> Degradation:
        """What an export's metadata says. Exports older than the choice of degradation carry a description
        string instead of a table: they were all trained on decimation at their ``scale`` (translated on read).
        Missing or unknown fields are one error naming ``where``, never a default."""
        fields = meta.get("degradation") if isinstance(meta, dict) else None
        try:
            if isinstance(fields, str):
                return cls("decimation", int(meta["scale"]))
            if not isinstance(fields, dict):
                raise KeyError("degradation")
            return cls(
                kind=fields["kind"],
                scale=int(fields["scale"] if "scale" in fields else meta["scale"]),
                window=fields.get("window", "none"),
                tukey_alpha=float(fields.get("tukey_alpha", 0.5)),
                noise=tuple(fields.get("noise_sigma", (0.0, 0.0))),
                thickness=int(fields.get("thickness", 0)),
            )
        except KeyError as exc:
            raise MetadataError(f"{where}: its metadata does not say {exc.args[0]!r}; not a heart-sr export") from None
        except (TypeError, ValueError) as exc:
            raise MetadataError(f"{where}: its metadata holds an unusable degradation ({exc})") from None

    @classmethod
    def from_config(cls, config) -> Degradation:
        d = config.degradation
        return cls(d.kind, d.factor, d.window, d.tukey_alpha, tuple(d.noise_sigma), d.thickness)
