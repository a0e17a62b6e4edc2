"""Choosing a tf.distribute strategy, and running one step function under it.

Keras 3.15's ``fit`` is broken under MultiWorkerMirroredStrategy (keras-team/keras#20585), so every
strategy runs ``strategy.run(step_fn)`` inside our own ``tf.function`` (see ``loop.py``).
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from heart_sr_tf.errors import HeartSRError

STRATEGIES = ("default", "mirrored", "multiworker", "auto")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``auto`` picks MirroredStrategy when several GPUs are visible, the default strategy otherwise."""
    if name not in STRATEGIES:
        raise HeartSRError(f"unknown strategy {name!r}, expected one of {', '.join(STRATEGIES)}")
    if name == "auto":
        name = "mirrored" if len(tf.config.list_logical_devices("GPU")) > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not cluster_config().get("cluster"):
        raise HeartSRError("--strategy multiworker needs the TF_CONFIG environment variable (cluster and task)")
    return tf.distribute.MultiWorkerMirroredStrategy()


def cluster_config() -> dict:
    """``$TF_CONFIG`` (empty or unset: ``{}``), checked: a JSON object whose ``cluster`` (if any) is an object and
    whose ``task`` (if any) is an object with a string ``type`` and an ``index`` of 0 or more. A cluster's
    scheduler sets it; one set by hand and mistyped was a traceback."""
    text = os.environ.get("TF_CONFIG", "").strip() or "{}"
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise HeartSRError(f"TF_CONFIG: not JSON ({exc}): {text[:80]!r}") from None
    if not isinstance(config, dict):
        raise HeartSRError(f"TF_CONFIG: must be a JSON object with 'cluster' and 'task', got {text[:80]!r}")
    task, cluster = config.get("task", {}), config.get("cluster", {})
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise HeartSRError(f"TF_CONFIG: 'cluster' and 'task' must be JSON objects, got {text[:80]!r}")
    index = task.get("index", 0)
    if not isinstance(task.get("type", "chief"), str) or not isinstance(index, int) or index < 0:
        raise HeartSRError(f"TF_CONFIG: the task needs a 'type' name and an 'index' of 0 or more, got {task!r}")
    return config


def is_chief() -> bool:
    """True unless TF_CONFIG names this process as a non-chief worker."""
    config = cluster_config()
    task = config.get("task", {})
    cluster = config.get("cluster", {})
    if task.get("type") == "worker" and "chief" not in cluster:
        return task.get("index", 0) == 0
    return task.get("type", "chief") == "chief"


def distributed_step(strategy, step_fn, jit_compile: bool = False):
    """A compiled function running ``step_fn(batch)`` once per replica, returning replica-mean logs.

    ``jit_compile`` (XLA) is for GPUs; it fails together with MirroredStrategy on a CPU.
    """

    @tf.function(jit_compile=jit_compile or None)
    def step(iterator):
        logs = strategy.run(step_fn, args=(next(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in logs.items()}

    return step


def distribute_dataset(strategy, ds: tf.data.Dataset):
    """Shard by data (the records are few files), and split each global batch over the replicas."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))
