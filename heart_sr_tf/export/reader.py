"""Reading an export back: the SavedModel itself (checked once, one line for a damaged one), its weights into a
rebuilt generator (``--init-from``, the bfloat16 twin), and the training config its metadata carries."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tomllib

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.layout import read_metadata, resolve_model_dir
from heart_sr_tf.models.mdcsrn import inflate_kernel
from heart_sr_tf.models.rrdb import SCALE_DEPENDENT_LAYERS, adapt_head, deepened


def load_exported(path: Path):
    """``(folder, loaded)`` for a SavedModel or the highest version under a model base path, with its
    ``serving_default`` signature checked. Keep ``loaded`` alive while its variables are read."""
    folder = resolve_model_dir(path)
    try:
        loaded = tf.saved_model.load(str(folder))
        loaded.signatures["serving_default"]
        return folder, loaded
    except Exception as exc:  # whatever a damaged file makes TensorFlow raise (IndexError, OpError, ...): one line
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HeartSRError(f"{folder}: not a loadable heart-sr SavedModel ({message[:200]})") from None


def load_exported_weights(folder: Path, generator, factors: tuple[int, int] | None = None) -> str:
    """Copy the weights of an exported SavedModel into ``generator``, matched by name.

    The architecture must be the same, with two exceptions, each said in the returned description. With
    ``factors`` (the generator's), the source may have been trained for other factors of the same kind: its
    scale-dependent head (``SCALE_DEPENDENT_LAYERS``) is then re-laid by ``adapt_head``. And an RRDB generator
    may have more blocks than the source: it is deepened (``rrdb.deepened``) so that it starts computing exactly
    what the source does.
    """
    folder, loaded = load_exported(folder)
    source = Degradation.from_metadata(read_metadata(folder), str(folder)).factors
    return copy_generator(folder, _saved_values(loaded), source, generator, factors)


def copy_generator(where, saved: dict, source: tuple[int, int], generator, factors=None) -> str:
    """A trained generator's weights by path (``saved``, trained for ``source`` factors, from ``where``) copied
    into ``generator``: the same architecture, or one for other ``factors`` (the head re-laid) or with more RRDB
    blocks (deepened); all or nothing (``copy_weights``). Returns where they came from and what was adapted."""
    saved, added = deepened(saved, generator)
    copy_weights(where, saved, generator, lambda value, weight: _adapted(value, weight, source, factors))
    notes = []
    if factors is not None and tuple(factors) != tuple(source):
        notes.append(f"trained for factors {tuple(source)}: its upsampling head re-laid for {tuple(factors)}")
    if added:
        notes.append(f"{added} RRDB blocks added after its own, starting as a pass-through")
    return f"{where} ({'; '.join(notes)})" if notes else str(where)


def load_segmenter_network(path: Path):
    """The exported segmenter's U-Net, rebuilt from its metadata config with the exported weights and frozen
    (``trainable = False``): a differentiable function for losses computed through the segmenter."""
    from heart_sr_tf.config import SegmenterConfig, from_dict
    from heart_sr_tf.models.registry import make_segmenter

    folder, loaded = load_exported(path)
    meta = read_metadata(folder)
    if meta.get("kind") != "segmenter" or not meta.get("config"):
        raise HeartSRError(f"{folder}: not an exported segmenter with its training config in the metadata")
    network = make_segmenter(from_dict(SegmenterConfig, tomllib.loads(meta["config"]), f"{folder} metadata"))
    copy_weights(folder, _saved_values(loaded), network)
    network.trainable = False
    return network


def _saved_values(loaded) -> dict:
    """A loaded SavedModel's variables by weight path."""
    return {v.name.split(":")[0]: v.numpy() for v in loaded.signatures["serving_default"].variables}


def copy_weights(folder: Path | str, saved: dict, network, adapt=lambda value, weight: None) -> None:
    """Assign every weight of ``network`` from the saved value of the same path (``adapt`` may re-lay a value of
    another shape); nothing is assigned unless every weight is found and every saved value is used (a smaller
    network would otherwise silently drop what it has no place for)."""
    unused = set(saved) - {w.path for w in network.weights}
    if unused:
        raise HeartSRError(
            f"{folder}: holds {len(unused)} weights this network has no place for (e.g. {min(unused)}); "
            "not this architecture"
        )
    values = []
    for weight in network.weights:
        value = saved.get(weight.path)
        if value is not None and value.shape != tuple(weight.shape):
            value = adapt(value, weight)
        if value is None:
            raise HeartSRError(
                f"{folder}: holds no weight {weight.path} of shape {tuple(weight.shape)}; not this architecture"
            )
        values.append(value)
    for weight, value in zip(network.weights, values, strict=True):
        weight.assign(value)


def _adapted(value, weight, source, target):
    """``value`` made to fit ``weight``, else None: a 2D kernel inflated for a 3D network, or a scale-dependent
    value re-laid from ``source`` to ``target`` factors."""
    if value.ndim == 4 and len(weight.shape) == 5 and tuple(value.shape) == tuple(weight.shape[:2] + weight.shape[3:]):
        return inflate_kernel(value, int(weight.shape[2]))
    if target is None or weight.path.split("/")[0] not in SCALE_DEPENDENT_LAYERS:
        return None
    try:
        value = adapt_head(value, source, tuple(target))
    except ValueError:
        return None
    return value if value.shape == tuple(weight.shape) else None


def export_config(meta: dict, folder: Path):
    """The training config an export's metadata carries (needed to rebuild its generator)."""
    from heart_sr_tf.config import SRGANConfig, WGANConfig, check, from_dict

    text = meta.get("config")
    if not text:
        raise HeartSRError(
            f"{folder}: its metadata holds no training config, so its generator cannot be rebuilt (in bfloat16, or "
            "to be exported again)"
        )
    values = tomllib.loads(text)
    config = from_dict(WGANConfig if "phases" in values else SRGANConfig, values, f"{folder} metadata")
    check(config)
    return config
