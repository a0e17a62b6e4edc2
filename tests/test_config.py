import pytest
import tomllib

from heart_sr_tf.config import CONFIG_CLASSES, WGANConfig, dump_toml, from_dict, load_config, shipped_configs
from heart_sr_tf.errors import ConfigError


@pytest.mark.parametrize("name", shipped_configs())
def test_shipped_configs_load_and_round_trip(name):
    kind = next((k for k in ("wgan", "segmenter") if name.startswith(k)), "srgan")
    config = load_config(name, CONFIG_CLASSES[kind])
    assert from_dict(type(config), tomllib.loads(dump_toml(config))) == config
    if kind == "segmenter":
        assert config.data.crop % 2**config.network.depth == 0
    else:
        assert config.data.patch % config.degradation.factor == 0


def test_shipped_configs_are_found_by_name_or_path():
    assert load_config("srgan_paper").generator.blocks == 23
    cpu = load_config("configs/srgan_cpu.toml")
    assert (cpu.generator.blocks, cpu.generator.features) == (4, 32)
    assert load_config("rrdb_kspace.toml").degradation.kind == "kspace"
    with pytest.raises(ConfigError, match="did you mean 'rrdb_kspace.toml'"):
        load_config("rrdb_kspac")


def _error(tmp_path, text, cls=None):
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(bad, cls or CONFIG_CLASSES["srgan"])
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message
    return message


def test_unknown_key_names_the_file_and_suggests_the_nearest(tmp_path):
    assert "generator.blockz: unknown key; did you mean 'blocks'?" in _error(tmp_path, "[generator]\nblockz = 3\n")
    assert "optim.schedul:" in _error(tmp_path, '[optim]\nschedul = "cosine"\n')


def test_wrong_types_and_bools_as_numbers_are_refused(tmp_path):
    assert "data.batch_size: expected int" in _error(tmp_path, '[data]\nbatch_size = "many"\n')
    assert "data.batch_size: expected int, got False" in _error(tmp_path, "[data]\nbatch_size = false\n")
    assert "optim.g_lr: expected float, got True" in _error(tmp_path, "[optim]\ng_lr = true\n")


def test_choices_are_checked_when_read_even_in_the_last_stage(tmp_path):
    text = '[[train.stages]]\nname = "a"\nadversarial = false\n\n[[train.stages]]\nname = "b"\nadversarial = true\n'
    message = _error(tmp_path, text + 'roi = "hart"\n')
    assert "train.stages[1].roi: 'hart' is not one of 'full', 'heart'; did you mean 'heart'?" in message
    assert "loss.pixel: 'l2' is not one of" in _error(tmp_path, '[loss]\npixel = "l2"\n')
    assert "train.mixed_precision:" in _error(tmp_path, '[train]\nmixed_precision = "bf16"\n')
    assert "degradation.kind: 'kspce'" in _error(tmp_path, '[degradation]\nkind = "kspce"\n')
    assert "data.axis:" in _error(tmp_path, '[data]\naxis = "time"\n', WGANConfig)


def test_ranges_are_checked_when_read(tmp_path):
    assert "optim.g_lr: the learning rate must be > 0, got -0.001" in _error(tmp_path, "[optim]\ng_lr = -1e-3\n")
    assert "data.patch: 50 is not a multiple of degradation.factor 3" in _error(tmp_path, "[data]\npatch = 50\n")
    assert "data.batch_size: must be at least 1, got 0" in _error(tmp_path, "[data]\nbatch_size = 0\n")
    stage = '[[train.stages]]\nname = "a"\nadversarial = false\nsteps = 0\n'
    assert "train.stages[0].steps: must be at least 1" in _error(tmp_path, stage)
    assert "train.steps: must be at least 1" in _error(tmp_path, "[train]\nsteps = -5\n", WGANConfig)
    assert "loss.pixel_weight: expected a finite number, got nan" in _error(tmp_path, "[loss]\npixel_weight = nan\n")
    held = '[data]\ndims = 3\naxis = "frames"\ncine_validation = ["patient001"]\ncine_test = ["patient001"]\n'
    assert "data.cine_validation and data.cine_test share a patient" in _error(tmp_path, held, WGANConfig)
    assert "apply to the kspace degradation only" in _error(tmp_path, '[degradation]\nwindow = "hamming"\n')
    twice = '[loss]\nsegmenter = "a"\nextra_segmenters = ["b", "a"]\n'
    assert "loss.extra_segmenters: ['b', 'a'] repeats a segmenter" in _error(tmp_path, twice)
    negative = "[loss]\nsegmentation_feature_weight = -0.1\n"
    assert "loss.segmentation_feature_weight: must be >= 0, got -0.1" in _error(tmp_path, negative)


def test_the_loop_fields_are_checked_alike_for_every_model(tmp_path):
    for kind in ("srgan", "wgan", "segmenter"):
        cls = CONFIG_CLASSES[kind]
        assert "train.log_every: must be at least 1, got 0" in _error(tmp_path, "[train]\nlog_every = 0\n", cls)
        assert "train.mixed_precision: 'fp8' is not one of" in _error(
            tmp_path, '[train]\nmixed_precision = "fp8"\n', cls
        )
        assert "train.seed: must be at least 0, got -1" in _error(tmp_path, "[train]\nseed = -1\n", cls)
        assert "train.seed: must be at most 4,294,967,295" in _error(tmp_path, "[train]\nseed = 4294967296\n", cls)
        (tmp_path / "ok.toml").write_text("[train]\nkeep_checkpoints = 7\nseed = 3\n")
        config = load_config(tmp_path / "ok.toml", cls)
        assert (config.train.keep_checkpoints, config.train.seed) == (7, 3)


def test_what_a_config_may_ask_is_bounded_before_any_work(tmp_path):
    assert "data.patch: must be at most 256" in _error(tmp_path, "[data]\npatch = 999\n")
    assert "data.batch_size: must be at most 4,096" in _error(tmp_path, "[data]\nbatch_size = 100000000000000000000\n")
    assert "batch_size x patch^2" in _error(tmp_path, "[data]\npatch = 255\nbatch_size = 300\n")
    assert "generator.residual_scale: expected a finite number" in _error(
        tmp_path, "[generator]\nresidual_scale = nan\n"
    )
    assert "optim.g_lr: expected a finite number" in _error(tmp_path, "[optim]\ng_lr = inf\n")
    assert "data.split_seed: must be at least 0, got -3" in _error(tmp_path, "[data]\nsplit_seed = -3\n")
    segmenter = CONFIG_CLASSES["segmenter"]
    assert "data.split_seed: must be at least 0" in _error(tmp_path, "[data]\nsplit_seed = -3\n", segmenter)


@pytest.mark.parametrize("command", [["phantoms", "p"], ["prepare"], ["train", "srgan", "--steps", "1"]])
@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_numpy_cannot_take_is_one_line_before_any_work(tmp_path, command, seed):
    """A negative seed was a traceback from numpy's generator (after a dataset or run folder was begun)."""
    from in_process import run_cli

    result = run_cli(*command, "--seed", seed, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "'--seed'" in result.stderr and "0<=x<=4294967295" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_factor_belongs_to_the_degradation_and_the_old_name_still_reads(tmp_path):
    """``data.scale`` (configs and exports written before the factor moved) reads as ``degradation.factor``."""
    (tmp_path / "old.toml").write_text('[data]\nscale = 4\npatch = 96\n\n[degradation]\nkind = "through_plane"\n')
    config = load_config(tmp_path / "old.toml")
    assert config.degradation.factor == 4 and not hasattr(config.data, "scale")
    assert "degradation.factor 4" in _error(tmp_path, "[data]\nscale = 4\npatch = 90\n")
    assert "data.scale (the old name of degradation.factor) disagrees" in _error(
        tmp_path, "[data]\nscale = 4\n\n[degradation]\nfactor = 3\n"
    )
    assert "degradation.factor: must be at least 2, got 1" in _error(tmp_path, "[degradation]\nfactor = 1\n")


@pytest.mark.parametrize(
    "setting,flags,policy,note",
    [
        ("auto", {"avx512f", "avx512_bf16"}, "mixed_bfloat16", "precision: mixed bfloat16 (train."),
        ("auto", {"amx_bf16", "amx_tile"}, "mixed_bfloat16", "precision: mixed bfloat16"),
        ("auto", {"avx2", "fma"}, "float32", "precision: float32 (train.mixed_precision = auto"),
        ("bfloat16", {"avx2", "fma"}, "mixed_bfloat16", "warning: train.mixed_precision = bfloat16 on "),
        ("bfloat16", {"avx512_bf16"}, "mixed_bfloat16", None),
        ("no", {"avx512_bf16"}, "float32", None),
    ],
)
def test_training_precision_auto_is_bfloat16_only_where_the_cpu_computes_it(monkeypatch, setting, flags, policy, note):
    """Emulated bfloat16 trained a generator about 7x slower than float32 on an AVX2-only CPU: ``auto`` (the shipped
    configs') chooses by the CPU's flags and says what it chose; bfloat16 asked for explicitly is kept, with a
    warning where it is emulated."""
    import keras

    import heart_sr_tf.hardware as hardware
    from heart_sr_tf.training.build import precision_note, set_precision

    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)  # no GPU here: the CPU decides
    config = load_config("srgan_cpu")
    config.train.mixed_precision = setting
    try:
        set_precision(config)
        assert keras.mixed_precision.global_policy().name == policy
    finally:
        keras.mixed_precision.set_global_policy("float32")
    got = precision_note(config)
    assert got is None if note is None else got.startswith(note)


def test_a_border_weight_needs_the_kl_term_it_weighs():
    from heart_sr_tf.config import LossConfig

    with pytest.raises(ConfigError, match="segmentation_border_weight: weighs the KL term's border pixels"):
        LossConfig(segmentation_border_weight=2.0).check()
    with pytest.raises(ConfigError, match="segmentation_border_weight"):
        LossConfig(segmentation_weight=0.1, segmentation_border_weight=-1.0).check()
    LossConfig(segmentation_weight=0.1, segmentation_border_weight=2.0).check()
