"""The exported segmenter as a function from protocol images to label volumes (TensorFlow), with the usual
post-processing of cardiac segmentation: each structure keeps its largest 3D connected component, so a stray
island elsewhere in the field of view never adds to a volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from heart_sr_tf.cardiac_metrics import STRUCTURES, UNSURE, kept_shares
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.discovery import find_model
from heart_sr_tf.export.layout import OURS, YOURS, read_metadata, require_segmenter, resolve_model_dir

SIGNATURE = (
    "image float32 [batch, h, w, 1] in [0, 1] -> labels integer [batch, h, w] (0 background, 1 RV, 2 myocardium, "
    "3 LV) and probabilities float32 [batch, h, w, 4]"
)


def segmenter_folder(path) -> tuple[Path, dict]:
    """The exported segmenter ``path`` names (a SavedModel, base path or shipped name) and its heart-sr metadata
    (empty for a lab's own SavedModel), read without loading it; a super-resolution model and a training run
    (not yet exported) are refused in one line."""
    from heart_sr_tf.training.runs import is_run_folder

    found = find_model(Path(path))
    if is_run_folder(found):
        raise HeartSRError(f"{found}: a training run, not an exported segmenter; export it first (cli.py export RUN)")
    folder = resolve_model_dir(found)
    meta = read_metadata(folder)
    require_segmenter(folder, meta)
    return folder, meta


class Segmenter:
    """``segmenter.volume(images)``: ``[slices, h, w]`` in [0, 1] -> labels ``[slices, h, w]`` (uint8).

    One of ours (an export with heart-sr metadata), or a lab's own SavedModel whose ``serving_default`` has the
    same signature (:data:`SIGNATURE`), taken on that signature; ``origin`` says which, for every output to state."""

    def __init__(self, path: Path = Path("segmenter"), batch_size: int = 8):
        from heart_sr_tf.startup import import_tensorflow_quietly

        import_tensorflow_quietly()  # (whoever loads it: cohort's check of a lab's segmenter printed absl's lines)
        import tensorflow as tf

        from heart_sr_tf.export.reader import load_exported

        folder, meta = segmenter_folder(path)
        self.folder, self._loaded = load_exported(folder)
        self._signature = self._loaded.signatures["serving_default"]
        self._tf, self.batch_size, self.metadata = tf, batch_size, meta
        self.origin = OURS if meta else YOURS
        self.size = None if meta else signature_size(self.folder, self._signature)

    def labels(self, images: np.ndarray) -> np.ndarray:
        """Per slice, no post-processing: ``[n, h, w]`` -> ``[n, h, w]`` uint8."""
        return self._outputs(images)[0]

    def _outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(labels [n, h, w] uint8, probabilities [n, h, w, classes])`` over ``[n, h, w]`` images, in batches:
        one pass gives both."""
        images = np.asarray(images, dtype=np.float32)
        if self.size is not None and any(a not in (None, b) for a, b in zip(self.size, images.shape[1:3])):
            raise HeartSRError(
                f"{self.folder}: takes images of {self.size[0]} x {self.size[1]} pixels only, and these are "
                f"{images.shape[1]} x {images.shape[2]}"
            )
        labels, probabilities = [], []
        for start in range(0, len(images), self.batch_size):
            out = self._signature(image=self._tf.constant(images[start : start + self.batch_size, ..., None]))
            labels.append(out["labels"].numpy().astype(np.uint8))
            probabilities.append(out["probabilities"].numpy())
        return np.concatenate(labels), np.concatenate(probabilities)

    def volume(self, images: np.ndarray) -> np.ndarray:
        """The slices of one 3D frame, segmented and post-processed together."""
        return largest_components(self.labels(images))

    def volume_and_kept(
        self, images: np.ndarray, bridge: int = 0
    ) -> tuple[np.ndarray, dict[str, float], dict[str, np.ndarray]]:
        """:meth:`volume`, with each structure's share of its labelled voxels that the post-processing kept, and
        per structure the voxels ``[n, h, w]`` where its probability lies within ``UNSURE``: the segmenter's own
        border of it, where the smallest change of the image can flip its decision. ``bridge``: see
        :func:`largest_components`."""
        raw, probabilities = self._outputs(images)
        labels = largest_components(raw, bridge)
        low, high = UNSURE
        unsure = {
            name: (probabilities[..., c] > low) & (probabilities[..., c] < high) for name, c in STRUCTURES.items()
        }
        return labels, kept_shares(raw, labels), unsure


def signature_size(folder: Path, signature) -> tuple[int | None, int | None]:
    """Check that a SavedModel without heart-sr metadata has a segmenter's ``serving_default`` (:data:`SIGNATURE`);
    one error line saying what it has otherwise. Returns the image size it is fixed to (None: any)."""
    import tensorflow as tf

    _, inputs = signature.structured_input_signature
    outputs = signature.structured_outputs
    image = inputs.get("image") if len(inputs) == 1 else None
    labels = outputs.get("labels") if isinstance(outputs, dict) else None
    probabilities = outputs.get("probabilities") if isinstance(outputs, dict) else None
    fits = (
        image is not None and image.dtype == tf.float32 and image.shape.rank == 4 and image.shape[-1] in (1, None)
        and labels is not None and labels.dtype.is_integer and labels.shape.rank == 3
        and probabilities is not None and probabilities.dtype.is_floating and probabilities.shape.rank == 4
        and (probabilities.shape[-1] is None or probabilities.shape[-1] >= 1 + len(STRUCTURES))
    )  # fmt: skip
    if not fits:
        raise HeartSRError(
            f"{folder}: no heart-sr metadata, and its serving_default is no segmenter's ({_shown(inputs)} -> "
            f"{_shown(outputs)}); a segmenter takes {SIGNATURE}"
        )
    return image.shape[1], image.shape[2]


def _shown(specs) -> str:
    """A signature's tensors as ``name dtype [shape]``."""
    specs = specs if isinstance(specs, dict) else {"(unnamed)": specs}
    return ", ".join(
        f"{name} {spec.dtype.name} {spec.shape.as_list() if spec.shape.rank is not None else '[?]'}"
        if hasattr(spec, "dtype") else f"{name} (not a tensor)"
        for name, spec in specs.items()
    )  # fmt: skip


def largest_components(labels: np.ndarray, bridge: int = 0) -> np.ndarray:
    """Each non-zero label keeps only its largest 3D connected component (26-connected).

    ``bridge``: parts of a structure apart by at most that many slices (the first axis), one above the other,
    count as one component; no voxel is added, only the choice of what to keep changes. For slices made between
    acquired ones (``upscale --through-plane``), where the segmenter can miss a structure in a row or two thinner
    than the acquisition resolved, and the largest component would otherwise drop the apex beyond them."""
    out = np.zeros_like(labels)
    structure = np.ones((3,) * labels.ndim, dtype=bool)
    for label in np.unique(labels):
        if label == 0:
            continue
        mask = labels == label
        joined = mask.copy()
        for rows in range(1, bridge + 1):  # each part carried down over the gap below it: parts apart by up to
            joined[rows:] |= mask[:-rows]  # ``bridge`` rows touch
        components, count = ndimage.label(joined, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(components[mask], minlength=count + 1)[1:]  # the structure's own voxels in each
        out[mask & (components == 1 + int(np.argmax(sizes)))] = label
    return out
