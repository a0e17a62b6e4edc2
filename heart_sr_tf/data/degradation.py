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
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:  # TensorFlow is imported where an op runs: reading metadata needs none
    import tensorflow as tf

from heart_sr_tf.data import kspace
from heart_sr_tf.data.interpolation import aligned_bicubic, axis_matrix
from heart_sr_tf.data.thick_slices import thick_slices, thick_slices_np
from heart_sr_tf.errors import ConfigError, HeartSRError

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
    """Which degradation makes an LR grid from an HR slice, with its options: the one type that a config's
    ``[degradation]`` table, the tf.data pipeline, the NumPy reference and an export's metadata all use.

    ``window``, ``tukey_alpha`` and ``noise_sigma`` (a sigma range on [0, 1] intensities) apply to ``kspace``
    only; ``thickness`` (the slice profile t in rows, 0 meaning t = factor) to ``through_plane`` only, where
    ``factor`` is the slice factor g along the first axis and the second axis keeps its size.
    """

    kind: Literal["decimation", "kspace", "through_plane"] = "decimation"  # decimation: LR = HR[::s, ::s] (the
    # paper); kspace: the central 1/s of the spectrum, magnitude (what a scanner acquires); through_plane: thick
    # slices s rows apart along the first axis (data/thick_slices.py), for models across the slices of a stack
    factor: int = DEFAULT_SCALE  # s: in-plane x s, or the slice factor g across slices (formerly data.scale)
    window: Literal["none", "hamming", "tukey"] = "none"  # kspace only: weighting of the kept spectrum
    tukey_alpha: float = 0.5  # kspace, tukey only: the tapered fraction of the band, in (0, 1]
    noise_sigma: tuple[float, float] = (0.0, 0.0)  # kspace only: Rician, sigma ~ U[lo, hi]
    thickness: int = 0  # through_plane only: the slice profile in rows (0: the factor, i.e. contiguous slices)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown degradation {self.kind!r}, expected one of {', '.join(KINDS)}")
        object.__setattr__(self, "noise_sigma", tuple(float(v) for v in self.noise_sigma))
        if self.kind == "through_plane" and self.thickness == 0:
            object.__setattr__(self, "thickness", self.factor)

    def check(self) -> None:
        """Every field in range and used by its kind; raises ConfigError naming the field."""
        if self.factor < 2 or self.factor > 16:
            bound = "at least 2" if self.factor < 2 else "at most 16"
            raise ConfigError(f"factor: must be {bound}, got {self.factor}")
        if not 0 < self.tukey_alpha <= 1:
            raise ConfigError(f"tukey_alpha: {self.tukey_alpha} is not in (0, 1]")
        noise = self.noise_sigma
        if len(noise) != 2 or not 0 <= noise[0] <= noise[1]:
            raise ConfigError(f"noise_sigma: {list(noise)} is not [lo, hi] with 0 <= lo <= hi")
        if self.kind != "kspace" and (self.window != "none" or noise[1] > 0):
            raise ConfigError("window and noise_sigma apply to the kspace degradation only")
        if self.thickness < 0 or (self.thickness and self.kind != "through_plane"):
            raise ConfigError(f"thickness: {self.thickness} is not >= 0, or the kind is not through_plane")

    @property
    def factors(self) -> tuple[int, int]:
        """How many HR pixels one LR sample spans along each axis."""
        return (self.factor, 1) if self.kind == "through_plane" else (self.factor, self.factor)

    @property
    def baselines(self) -> tuple[str, ...]:
        """The classical methods a model on this degradation is shown next to, the one to beat first."""
        if self.kind == "through_plane":
            return ("cubic", "linear", "sinc")
        return ("zero_fill", "bicubic") if self.kind == "kspace" else ("bicubic", "blocky")

    def pair(self, hr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """TF op on one slice ``[H, W, 1]``: ``(lr, hr)``, the HR cropped to a multiple of s for ``kspace``."""
        if self.kind == "kspace":
            return kspace.kspace_lr(hr, self.factor, self.window, self.tukey_alpha, self.noise_sigma)
        if self.kind == "through_plane":
            return thick_slices(hr, self.factor, self.thickness), hr
        return lr_grid(hr, self.factor), hr

    def pair_np(self, hr: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """NumPy reference on one 2D slice; noise (if any) drawn from ``rng``."""
        if self.kind == "kspace":
            rng = rng or np.random.default_rng(0)
            lr = kspace.kspace_lr_np(hr, self.factor, self.window, self.tukey_alpha, self._sigma(rng), rng)
            return lr, self.hr_np(hr)
        if self.kind == "through_plane":
            return thick_slices_np(hr, self.factor, self.thickness), self.hr_np(hr)
        return lr_grid_np(hr, self.factor), self.hr_np(hr)

    def hr_np(self, hr: np.ndarray) -> np.ndarray:
        """The full-resolution slice as :meth:`pair_np` pairs it, without degrading it: cropped to a multiple of s
        for ``kspace``."""
        if self.kind == "kspace":
            return kspace.crop_to_multiple(np.asarray(hr), self.factor)
        return np.asarray(hr)

    def _sigma(self, rng: np.random.Generator) -> float:
        lo, hi = self.noise_sigma
        return float(rng.uniform(lo, hi)) if hi > 0 else 0.0

    def acquired_np(self, hr: np.ndarray, factor: float, rng: np.random.Generator | None = None) -> np.ndarray:
        """``kspace`` only: what the scanner shows on the 2D slice ``hr``'s own grid when it acquires the central
        ``1/factor`` of the spectrum along each axis instead of ``1/s`` (any real factor >= 1), with this
        degradation's window and noise: zero-filling of a milder acquisition."""
        if self.kind != "kspace":
            raise ValueError(f"milder acquisitions are k-space ones; this degradation is {self.kind}")
        rng = rng or np.random.default_rng(0)
        return kspace.acquired_np(hr, factor, self.window, self.tukey_alpha, self._sigma(rng), rng)

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
                rows = axis_matrix(lr.shape[0], hr_shape[0], self.factor, name)
                out[name] = np.clip(rows @ np.asarray(lr, np.float64)[:, : hr_shape[1]], 0, 1).astype(np.float32)
            elif name == "zero_fill":
                out[name] = kspace.zero_fill_np(lr, self.factor)[: hr_shape[0], : hr_shape[1]]
            elif name == "bicubic":
                out[name] = aligned_bicubic(lr, self.factor, hr_shape)
            else:
                out[name] = blocky_np(lr, self.factor, hr_shape)
        return out

    def describe(self) -> str:
        text = DESCRIPTIONS[self.kind].format(s=self.factor, t=self.thickness)
        if self.kind == "kspace":
            if self.window != "none":
                text += f"; {self.window} window" + (f" (alpha {self.tukey_alpha:g})" if self.window == "tukey" else "")
            if self.noise_sigma[1] > 0:
                text += f"; Rician noise, sigma uniform in [{self.noise_sigma[0]:g}, {self.noise_sigma[1]:g}]"
        return text

    def metadata(self) -> dict:
        """Machine-readable fields for an export's metadata."""
        return {
            "kind": self.kind,
            "scale": self.factor,
            "window": self.window,
            "tukey_alpha": self.tukey_alpha,
            "noise_sigma": list(self.noise_sigma),
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
            degradation = cls(
                kind=fields["kind"],
                factor=int(fields["scale"] if "scale" in fields else meta["scale"]),
                window=fields.get("window", "none"),
                tukey_alpha=float(fields.get("tukey_alpha", 0.5)),
                noise_sigma=tuple(fields.get("noise_sigma", (0.0, 0.0))),
                thickness=int(fields.get("thickness", 0)),
            )
            degradation.check()
            return degradation
        except KeyError as exc:
            if isinstance(meta, dict) and meta.get("kind") == "segmenter":
                raise MetadataError(
                    f"{where}: a segmenter, not a super-resolution model (use it with --segmenter)"
                ) from None
            if not meta:  # (a SavedModel of other code, or one copied without its assets.extra folder)
                raise MetadataError(
                    f"{where}: no heart-sr metadata (assets.extra/heart_sr_metadata.json): not a heart-sr export, "
                    "or copied without its assets.extra folder"
                ) from None
            raise MetadataError(f"{where}: its metadata does not say {exc.args[0]!r}; not a heart-sr export") from None
        except (TypeError, ValueError, ConfigError) as exc:
            raise MetadataError(f"{where}: its metadata holds an unusable degradation ({exc})") from None
