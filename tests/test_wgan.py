import csv
import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from in_process import run_cli

from heart_sr_tf.config import PhaseConfig
from heart_sr_tf.models.critic import wgan_critic
from heart_sr_tf.models.mdcsrn import mdcsrn_generator
from heart_sr_tf.training.distribute import distribute_dataset, distributed_step
from heart_sr_tf.training.phases import action_at
from heart_sr_tf.training.wgan import WGAN, gradient_penalty

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny_wgan.toml"
S = PhaseConfig(n1=2, n2=3, n3=4, n4=8, k=3, p=3, b=2)


@pytest.mark.parametrize(
    "step, phase, mode",
    [
        (0, 1, "generator"),
        (1, 1, "generator"),
        (2, 2, "both"),
        (4, 2, "both"),
        (5, 3, "critic"),
        (8, 3, "critic"),
        (9, 4, "critic"),
        (11, 4, "critic"),
        (12, 4, "generator"),
        (13, 4, "critic"),
        (16, 4, "generator"),
        (17, 5, "both"),
        (19, 5, "both"),
        (20, 5, "critic"),
        (21, 5, "critic"),
        (22, 5, "both"),
        (25, 5, "critic"),
    ],
)
def test_schedule_table(step, phase, mode):
    action = action_at(step, S)
    assert (action.phase, action.mode) == (phase, mode)


def test_schedule_counts_with_the_replica_defaults():
    s = PhaseConfig(n1=100, n2=100, n3=10_000, n4=800, k=7, p=500, b=200)
    modes = [action_at(i, s).mode for i in range(10_200, 11_000)]
    assert modes.count("generator") == 100 and modes.count("critic") == 700
    burst = [action_at(11_000 + i, s).mode for i in range(700)]
    assert burst[:500] == ["both"] * 500 and burst[500:] == ["critic"] * 200
    with pytest.raises(ValueError):
        action_at(-1, s)


def test_gradient_penalty_on_a_linear_critic():
    inputs = keras.Input((4, 4, 1))
    critic = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Flatten()(inputs)))
    critic.layers[-1].set_weights([np.full((16, 1), 0.5, np.float32), np.zeros(1, np.float32)])
    real, fake = tf.random.uniform((3, 4, 4, 1)), tf.random.uniform((3, 4, 4, 1))
    gp = gradient_penalty(critic, real, fake).numpy()  # ||grad|| = 0.5 * sqrt(16) = 2
    np.testing.assert_allclose(gp, np.ones(3), rtol=1e-5)
    critic.layers[-1].set_weights([np.full((16, 1), 0.25, np.float32), np.zeros(1, np.float32)])
    np.testing.assert_allclose(gradient_penalty(critic, real, fake, 0.3).numpy(), np.zeros(3), atol=1e-5)


@pytest.mark.parametrize("depth", [1, 5, 7])
def test_3d_shapes_upsample_only_in_plane(depth):
    g = mdcsrn_generator(3, blocks=2, units=2, growth=4)
    out = g(tf.random.uniform((2, 10, 13, depth, 1)))
    assert out.shape == (2, 30, 39, depth, 1)
    assert wgan_critic(3, 4, 2)(out).shape == (2, 1)


def test_untrained_generators_start_at_aligned_bicubic():
    from heart_sr_tf.data.interpolation import aligned_bicubic

    lr = np.random.default_rng(0).random((9, 11)).astype(np.float32)
    out = mdcsrn_generator(2, blocks=1, units=1, growth=4)(lr[None, ..., None])[0, ..., 0].numpy()
    np.testing.assert_allclose(out, aligned_bicubic(lr, 3, (27, 33), clip=False), atol=1e-5)


def _wgan(dims=2, seed=0, optimizer=keras.optimizers.Adam, lr=1e-3):
    keras.utils.set_random_seed(seed)
    model = WGAN(mdcsrn_generator(dims, blocks=1, units=2, growth=4), wgan_critic(dims, 4, 2))
    model.compile(optimizer(lr), optimizer(lr))
    model.g_optimizer.build(model.generator.trainable_variables)
    model.d_optimizer.build(model.critic.trainable_variables)
    return model


def _data(dims=2, n=4, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, 24, 24, 3, 1) if dims == 3 else (n, 24, 24, 1)
    hr = tf.constant(rng.random(shape).astype(np.float32))
    return hr[:, ::3, ::3], hr


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize(
    "mode, generator, critic", [("generator", True, False), ("critic", False, True), ("both", True, True)]
)
def test_each_mode_changes_exactly_its_networks(dims, mode, generator, critic):
    model = _wgan(dims)
    before = {n: [v.numpy().copy() for v in getattr(model, n).trainable_variables] for n in ("generator", "critic")}
    logs = model.step_for(mode)(_data(dims))
    assert all(np.isfinite(float(v)) for v in logs.values())
    for name, expected in (("generator", generator), ("critic", critic)):
        after = getattr(model, name).trainable_variables
        changed = any(not np.array_equal(a, b.numpy()) for a, b in zip(before[name], after))
        assert changed == expected, f"{mode}: {name} changed={changed}"


def _joint_step(model, data, strategy):
    """One joint step through the training loop's compiled ``strategy.run`` (the production path)."""
    return distributed_step(strategy, model.step_for("both"))(iter(distribute_dataset(strategy, data)))


@pytest.mark.slow  # exports and converts, or compiles under two devices: tens of seconds
def test_mirrored_joint_step_equals_single_device(monkeypatch):
    import heart_sr_tf.training.wgan as wgan_module

    fixed = lambda critic, real, fake: gradient_penalty(critic, real, fake, alpha=0.3)  # noqa: E731
    monkeypatch.setattr(wgan_module, "gradient_penalty", fixed)  # the same interpolation on every replica
    cpus = tf.config.list_logical_devices("CPU")
    data = tf.data.Dataset.from_tensors(_data(2, n=8, seed=2))
    single = _wgan(seed=4, optimizer=keras.optimizers.SGD, lr=0.1)
    _joint_step(single, data, tf.distribute.get_strategy())
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in cpus[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        mirrored = _wgan(seed=4, optimizer=keras.optimizers.SGD, lr=0.1)
    assert strategy.num_replicas_in_sync == 2
    _joint_step(mirrored, data, strategy)
    start = _wgan(seed=4, optimizer=keras.optimizers.SGD, lr=0.1)
    for net in ("generator", "critic"):
        moved = 0.0
        for x, y, z in zip(*(getattr(m, net).weights for m in (single, mirrored, start))):
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5)
            moved = max(moved, float(np.abs(x.numpy() - z.numpy()).max()))
        assert moved > 1e-5


def _phase_rows(run):
    return [(int(r["step"]), r["stage"]) for r in csv.DictReader((run / "metrics.csv").open()) if r["stage"]]


def test_resume_in_the_middle_of_phase_four(phantom_tfds, tmp_path):
    args = ["train", "wgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "w"]
    first = run_cli(*args, "--quiet", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "w"
    assert tf.train.latest_checkpoint(str(run / "checkpoints")).endswith("ckpt-12")
    assert dict(_phase_rows(run))[12].startswith("phase4")  # the first run stopped inside phase 4
    config = (run / "config.toml").read_text().replace("steps = 12", "steps = 19")
    (run / "config.toml").write_text(config)
    second = run_cli("train", "wgan", "--resume", run, "--quiet", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "trained 19 steps" in second.stdout
    assert "resumed from" in second.stdout and "at step 12, phase4-" in second.stdout
    rows = _phase_rows(run)
    schedule = PhaseConfig(n1=2, n2=2, n3=4, n4=8, k=3, p=3, b=2)
    steps = [step for step, _ in rows]
    assert sorted(set(steps)) == list(range(1, 20))
    for step, stage in rows:
        if stage.startswith("phase"):
            action = action_at(step - 1, schedule)
            assert stage == f"phase{action.phase}-{action.mode}", (step, stage)
    assert dict(rows)[13].startswith("phase4") and dict(rows)[18].startswith("phase5")
    from heart_sr_tf.inference.predictor import load_predictor

    out = load_predictor(run)(np.zeros((1, 8, 9, 1), np.float32))  # WGAN generators serve like the others
    assert out.shape == (1, 24, 27, 1)


def test_a_3d_model_trains_exports_and_upscales_whole_frames(phantom_root, phantom_tfds, tmp_path):
    from heart_sr_tf.config import WGANConfig, load_config
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.wgan_trainer import train_wgan
    from heart_sr_tf.volumes.upscale import upscale_file

    config = load_config(TINY, WGANConfig)
    config.data.dims, config.data.depth, config.data.batch_size = 3, 3, 2
    config.train.steps = 3
    run = Run.create(tmp_path, "w3", config, kind="wgan", data_dir=phantom_tfds)
    result = train_wgan(run, quiet=True)
    assert result.steps == 3 and np.isfinite(result.validation["psnr"])
    run_predictor = load_predictor(run.folder)
    assert run_predictor.volumetric
    meta = {"scale": 3, "config": (run.folder / "config.toml").read_text()}
    target = export_generator(run_predictor.generator, tmp_path / "saved", "w3d", metadata=meta)
    served = load_predictor(target)
    assert served.volumetric
    lr = np.random.default_rng(0).random((1, 8, 10, 6, 1)).astype(np.float32)
    np.testing.assert_allclose(served.volume(lr), run_predictor.volume(lr), atol=1e-5)
    assert served(lr[:, :, :, 0]).shape == (1, 24, 30, 1)
    import nibabel as nib

    cine = nib.load(str(phantom_root / "training" / "patient003" / "patient003_4d.nii.gz"))
    src = tmp_path / "cine.nii.gz"  # a crop around the heart, every slice and frame, keeps the test short
    nib.save(nib.Nifti1Image(np.asarray(cine.dataobj)[60:108, 80:120], cine.affine, cine.header), str(src))
    out = upscale_file(src, tmp_path / "up.nii.gz", served, quiet=True)
    assert nib.load(str(out)).shape == (3 * 48, 3 * 40, 6, 10)


def test_a_temporal_model_trains_on_cines_and_upscales_each_slice_cine(phantom_root, phantom_tfds, tmp_path):
    """Along frames: trained on the training patients' cines (k-space degraded frame by frame), validated on a
    held-out cine at its training depth, exported, and applied to each slice's cine by ``upscale``, each frame
    from the frames centred on it."""
    from heart_sr_tf.config import WGANConfig, load_config
    from heart_sr_tf.data.cine import frame_windows
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.wgan_trainer import train_wgan
    from heart_sr_tf.volumes.upscale import upscale_file

    config = load_config(TINY, WGANConfig)
    config.data.dims, config.data.axis, config.data.depth, config.data.batch_size = 3, "frames", 3, 2
    config.degradation = dataclasses.replace(config.degradation, kind="kspace")
    config.train.steps = 3
    run = Run.create(tmp_path, "w3t", config, kind="wgan", data_dir=phantom_tfds)
    result = train_wgan(run, quiet=True)
    assert result.steps == 3 and np.isfinite(result.validation["psnr"])
    assert result.baselines["zero_fill"]["psnr"] > 10  # scored next to zero-filling on the held-out cine
    run_predictor = load_predictor(run.folder)
    meta = {"scale": 3, "config": (run.folder / "config.toml").read_text()}
    target = export_generator(
        run_predictor.generator, tmp_path / "saved", "w3t", metadata=meta, degradation=run_predictor.degradation
    )
    served = load_predictor(target)
    assert served.axis == "frames" and served.depth == 3
    lr = np.random.default_rng(0).random((10, 12, 5)).astype(np.float32)
    out = served.frames(lr)
    assert out.shape == (30, 36, 5)
    windows = frame_windows(lr, 3)[..., None]
    direct = run_predictor.generator(windows, training=False).numpy()[:, :, :, 1, 0]  # each window's centre
    np.testing.assert_allclose(out, np.clip(np.moveaxis(direct, 0, 2), 0, 1), atol=1e-4)
    import nibabel as nib

    cine = nib.load(str(phantom_root / "training" / "patient003" / "patient003_4d.nii.gz"))
    src = tmp_path / "cine.nii.gz"  # a crop of two slices keeps the test short
    nib.save(nib.Nifti1Image(np.asarray(cine.dataobj)[60:108, 80:120, 2:4], cine.affine, cine.header), str(src))
    written = upscale_file(src, tmp_path / "up.nii.gz", served, quiet=True)
    assert nib.load(str(written)).shape == (3 * 48, 3 * 40, 2, 10)
