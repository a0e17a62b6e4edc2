"""Typed hyper-parameters: one dataclass per part, loaded from TOML files and checked completely when read.

The shipped configs live inside the package (``heart_sr_tf/configs/``, read with ``importlib.resources``),
so they are found however the tool is installed. Every error is one line naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

import tomllib

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import ConfigError

CONFIG_DIR = files("heart_sr_tf") / "configs"


Precision = Literal["no", "float16", "bfloat16", "auto"]
HR_SIDE = 256  # the protocol's slices: no training patch can be larger
BATCH_PIXELS = 2**24  # HR pixels in one training step (e.g. 256 patches of 256x256): about 1 GB of activations
MAX_SEED = 2**32 - 1  # the largest seed numpy's generators take (a seed is never negative)


@dataclass
class DataConfig:
    patch: int = 96  # HR patch side in pixels, a multiple of degradation.factor
    batch_size: int = 16  # global batch, split over replicas
    patches_per_slice: int = 4
    shuffle_buffer: int = 1024
    phantom_patients: int = 10
    split_seed: int = 0
    validation_slices: int = 32  # whole validation slices scored during training

    def check(self) -> None:
        _at_least(self, patch=1, batch_size=1, patches_per_slice=1, shuffle_buffer=1)
        _at_least(self, phantom_patients=3, validation_slices=1, split_seed=0)
        _at_most(self, patch=HR_SIDE, batch_size=4096, patches_per_slice=256, shuffle_buffer=1_000_000)
        _at_most(self, split_seed=MAX_SEED)
        if self.batch_size * self.patch**2 > BATCH_PIXELS:
            raise ConfigError(
                f"batch_size x patch^2: {self.batch_size} x {self.patch}^2 HR pixels per step is more than "
                f"{BATCH_PIXELS:,}; lower one of them"
            )


@dataclass
class GeneratorConfig:
    blocks: int = 4
    features: int = 32
    growth: int = 16
    residual_scale: float = 0.2
    bicubic_skip: bool = True

    def check(self) -> None:
        _at_least(self, blocks=1, features=1, growth=1)


@dataclass
class DiscriminatorConfig:
    features: int = 32
    stages: int = 4

    def check(self) -> None:
        _at_least(self, features=1, stages=1)


@dataclass
class LossConfig:
    pixel: Literal["mse", "l1"] = "mse"  # "mse" (the paper) or "l1"
    pixel_weight: float = 1.0
    ssim_weight: float = 0.0  # 1 - SSIM (7x7, as every published number), a fidelity term beside the pixel loss
    feature_weight: float = 0.0  # VGG19 feature loss; needs the ImageNet weights
    adversarial_weight: float = 1e-3
    vgg_layer: str = "block5_conv4"
    vgg_weights: str = "imagenet"  # "imagenet" (Keras cache), "random" (tests only) or a file
    segmentation_weight: float = 0.0  # task-aware term: KL of a frozen segmenter's output on SR from that on HR
    segmenter: str = "segmenter"  # the exported segmenter the term runs through (a path or a shipped model's name)
    extra_segmenters: list[str] = field(default_factory=list)  # more exported segmenters; the term is the mean of
    # its value through each, so the generator does not learn one segmenter's quirks
    segmentation_class_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])  # background,
    # RV, myocardium, LV: each pixel's weight by the class the segmenter finds in HR
    segmentation_volume_weight: float = 0.0  # through the same segmenters: each structure's soft area on SR against
    # HR's (relative), the border shift that sets volumes and mass
    segmentation_feature_weight: float = 0.0  # through the same segmenters: their encoder features on SR against
    # those on HR (each level's squared distance over HR's energy), every edge the encoder responds to
    segmentation_border_weight: float = 0.0  # the KL term's pixels on the segmenter's own border in HR (its largest
    # class probability under 0.8, where most of the remaining disagreement lies) weigh 1 + this much more

    def check(self) -> None:
        _non_negative(self, "pixel_weight", "ssim_weight", "feature_weight", "adversarial_weight")
        _non_negative(self, "segmentation_weight", "segmentation_volume_weight", "segmentation_feature_weight")
        _non_negative(self, "segmentation_border_weight")
        if self.segmentation_border_weight and not self.segmentation_weight:
            raise ConfigError(
                "segmentation_border_weight: weighs the KL term's border pixels; segmentation_weight is 0"
            )
        if self.segmenter in self.extra_segmenters or len(set(self.extra_segmenters)) < len(self.extra_segmenters):
            raise ConfigError(f"extra_segmenters: {self.extra_segmenters} repeats a segmenter")
        weights = self.segmentation_class_weights
        if len(weights) != 4 or not all(w >= 0 for w in weights) or not any(weights):
            raise ConfigError(
                f"segmentation_class_weights: {weights} is not 4 weights >= 0 (background, RV, myocardium, LV)"
            )


@dataclass
class OptimConfig:
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: decay to lr * final_lr_fraction over the run
    final_lr_fraction: float = 0.05

    def check(self) -> None:
        for name in ("g_lr", "d_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: the learning rate must be > 0, got {getattr(self, name)}")
        for name in ("beta_1", "beta_2", "final_lr_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name}: {getattr(self, name)} is not in [0, 1]")


@dataclass
class Stage:
    name: str
    adversarial: bool  # False: generator alone on the pixel loss (pre-training)
    roi: Literal["full", "heart"] = "full"  # "full" slices or "heart" boxes
    steps: int = 100

    def check(self) -> None:
        _at_least(self, steps=1)


@dataclass
class LoopConfig:
    """What the training loop does every so many steps, and the numeric precision (shared by every model)."""

    seed: int = 0  # initial weights, patch sampling and augmentation (tf.data's parallel order aside)
    log_every: int = 25
    checkpoint_every: int = 50
    validate_every: int = 100
    image_every: int = 100
    keep_checkpoints: int = 3
    # "float16" or "bfloat16": mixed precision; "auto": bfloat16 where the CPU (AVX512_BF16, AMX) or GPU computes it
    # natively, else float32 (emulated bfloat16 trains many times slower)
    mixed_precision: Precision = "no"
    jit_compile: bool = False  # XLA (GPU); never together with MirroredStrategy on CPU

    def check(self) -> None:
        _at_least(self, log_every=1, checkpoint_every=1, validate_every=1, image_every=1, keep_checkpoints=1)
        _at_least(self, seed=0)
        _at_most(self, seed=MAX_SEED)


@dataclass
class ClinicalValidationConfig(LoopConfig):
    """A generator's loop, whose validation may also report the clinical figures (``evaluate --clinical``'s, on
    the validation patients): ``clinical_segmenter`` names the exported segmenter to measure through ("": off),
    ``clinical_patients`` how many validation patients (0: all of them)."""

    clinical_segmenter: str = ""
    clinical_patients: int = 0

    def check(self) -> None:
        super().check()
        _at_least(self, clinical_patients=0)


@dataclass
class TrainConfig(ClinicalValidationConfig):
    stages: list[Stage] = field(
        default_factory=lambda: [
            Stage("pretrain-full", False, "full", 150),
            Stage("pretrain-heart", False, "heart", 50),
            Stage("gan-full", True, "full", 100),
            Stage("gan-heart", True, "heart", 50),
        ]
    )

    def check(self) -> None:
        super().check()
        if not self.stages:
            raise ConfigError("stages: at least one stage is needed")


@dataclass
class SRGANConfig:
    data: DataConfig = field(default_factory=DataConfig)
    degradation: Degradation = field(default_factory=Degradation)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def check(self) -> None:
        _patch_fits(self)
        if self.degradation.kind == "through_plane" and self.train.clinical_segmenter:
            raise ConfigError("train.clinical_segmenter: clinical validation is for in-plane models")


@dataclass
class WGANDataConfig(DataConfig):
    dims: Literal[2, 3] = 2  # 2: slices; 3: volumes [H, W, D]
    axis: Literal["slices", "frames"] = "slices"  # 3D only: D runs along "slices" or cine "frames"
    depth: int = 4  # 3D only: D of a training patch
    patch: int = 48
    batch_size: int = 8
    # axis "frames" only: folders of 4D cines besides the ACDC source (relative paths from the current folder),
    # and cine patients kept out of training: to choose on (validation) and to report on (test). A cine patient
    # of the prepared data's validation or test split never trains either.
    cine_dirs: list[str] = field(default_factory=list)
    cine_validation: list[str] = field(default_factory=list)
    cine_test: list[str] = field(default_factory=list)

    def check(self) -> None:
        super().check()
        _at_least(self, depth=1)
        _at_most(self, depth=64)
        if set(self.cine_validation) & set(self.cine_test):
            raise ConfigError("data.cine_validation and data.cine_test share a patient")
        if self.dims == 3 and self.batch_size * self.patch**2 * self.depth > BATCH_PIXELS:
            raise ConfigError(f"batch_size x patch^2 x depth: more than {BATCH_PIXELS:,} HR voxels per step")


@dataclass
class MDCSRNConfig:
    blocks: int = 4
    units: int = 4
    growth: int = 16
    bicubic_skip: bool = True

    def check(self) -> None:
        _at_least(self, blocks=1, units=1, growth=1)


@dataclass
class CriticConfig:
    features: int = 32
    stages: int = 3

    def check(self) -> None:
        _at_least(self, features=1, stages=1)


@dataclass
class WGANLossConfig:
    content: Literal["l1", "mse"] = "l1"
    lambda_gp: float = 10.0
    lambda_adv: float = 1e-3

    def check(self) -> None:
        _non_negative(self, "lambda_gp", "lambda_adv")


@dataclass
class PhaseConfig:
    """Lengths of the five phases in steps (see heart_sr_tf/training/phases.py)."""

    n1: int = 500
    n2: int = 500
    n3: int = 10_000
    n4: int = 2_000
    k: int = 7
    p: int = 500
    b: int = 200

    def check(self) -> None:
        _at_least(self, n1=0, n2=0, n3=0, n4=0, k=1, p=1, b=0)


@dataclass
class WGANTrainConfig(ClinicalValidationConfig):
    steps: int = 400  # total; phase 5 runs from the end of phase 4 to here

    def check(self) -> None:
        super().check()
        _at_least(self, steps=1)


@dataclass
class WGANConfig:
    data: WGANDataConfig = field(default_factory=WGANDataConfig)
    degradation: Degradation = field(default_factory=Degradation)
    generator: MDCSRNConfig = field(default_factory=MDCSRNConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    loss: WGANLossConfig = field(default_factory=WGANLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(g_lr=1e-4, d_lr=1e-4, beta_1=0.5, beta_2=0.9))
    phases: PhaseConfig = field(default_factory=PhaseConfig)
    train: WGANTrainConfig = field(default_factory=WGANTrainConfig)

    def check(self) -> None:
        _patch_fits(self)
        if self.degradation.kind == "through_plane":
            raise ConfigError("degradation.kind: through_plane trains the RRDB generator (train srgan), not mDCSRN")
        if self.data.dims == 3 and self.train.clinical_segmenter:
            raise ConfigError("train.clinical_segmenter: clinical validation is for 2D generators (data.dims = 2)")


@dataclass
class SegDataConfig:
    """The segmenter's data: ACDC's labelled ED/ES frames of the training patients, on the protocol grid."""

    crop: int = 192  # side of the random training patches (of 256x256 slices), a multiple of 2 ** network.depth
    batch_size: int = 8
    split_seed: int = 0  # the patient split, as ``prepare --seed``: the segmenter never sees an SR test patient

    def check(self) -> None:
        _at_least(self, crop=16, batch_size=1, split_seed=0)
        _at_most(self, batch_size=4096, split_seed=MAX_SEED)
        if self.batch_size * self.crop**2 > BATCH_PIXELS:
            raise ConfigError(f"batch_size x crop^2: more than {BATCH_PIXELS:,} pixels per step")
        if self.crop > 256:
            raise ConfigError(f"crop: {self.crop} is larger than the 256x256 protocol slices")


@dataclass
class UNetConfig:
    features: int = 32
    depth: int = 4
    dropout: float = 0.1

    def check(self) -> None:
        _at_least(self, features=1, depth=1)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout: {self.dropout} is not in [0, 1)")


@dataclass
class SegLossConfig:
    ce_weight: float = 1.0
    dice_weight: float = 1.0

    def check(self) -> None:
        _non_negative(self, "ce_weight", "dice_weight")
        if not self.ce_weight + self.dice_weight > 0:
            raise ConfigError("ce_weight and dice_weight: at least one must be > 0")


@dataclass
class SegOptimConfig:
    lr: float = 1e-3
    schedule: Literal["constant", "cosine"] = "cosine"
    final_lr_fraction: float = 0.02

    def check(self) -> None:
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"lr: the learning rate must be a finite number > 0, got {self.lr}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ConfigError(f"final_lr_fraction: {self.final_lr_fraction} is not in [0, 1]")


@dataclass
class SegTrainConfig(LoopConfig):
    steps: int = 400
    validation_patients: int = 15  # validation patients scored (3D Dice per frame) during training

    def check(self) -> None:
        super().check()
        _at_least(self, steps=1, validation_patients=1)


@dataclass
class SegmenterConfig:
    data: SegDataConfig = field(default_factory=SegDataConfig)
    network: UNetConfig = field(default_factory=UNetConfig)
    loss: SegLossConfig = field(default_factory=SegLossConfig)
    optim: SegOptimConfig = field(default_factory=SegOptimConfig)
    train: SegTrainConfig = field(default_factory=SegTrainConfig)

    def check(self) -> None:
        if self.data.crop % 2**self.network.depth:
            raise ConfigError(f"data.crop: {self.data.crop} is not a multiple of 2 ** network.depth")


CONFIG_CLASSES = {"srgan": SRGANConfig, "wgan": WGANConfig, "segmenter": SegmenterConfig}


def _at_least(config, **minimums: int) -> None:
    for name, minimum in minimums.items():
        value = getattr(config, name)
        if value < minimum:
            raise ConfigError(f"{name}: must be at least {minimum}, got {value}")


def _at_most(config, **maximums: int) -> None:
    for name, maximum in maximums.items():
        value = getattr(config, name)
        if value > maximum:
            raise ConfigError(f"{name}: must be at most {maximum:,}, got {value:,}")


def _non_negative(config, *names: str) -> None:
    for name in names:
        if not getattr(config, name) >= 0:
            raise ConfigError(f"{name}: must be >= 0, got {getattr(config, name)}")


def check(config) -> None:
    """Check a config tree (each dataclass's ``check``); raise ConfigError naming the key."""
    _check(config, "")


def _check(config, where: str) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            _check(value, f"{where}{f.name}.")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check(item, f"{where}{f.name}[{i}].")
    if hasattr(config, "check"):
        try:
            config.check()
        except ConfigError as exc:
            raise ConfigError(f"{where}{exc}") from None


def _patch_fits(config) -> None:
    if config.data.patch % config.degradation.factor:
        raise ConfigError(
            f"data.patch: {config.data.patch} is not a multiple of degradation.factor {config.degradation.factor}"
        )


def _translated(cls, values: dict, where: str) -> dict:
    """Configs written before the factor moved to the degradation say ``data.scale``: read it as
    ``degradation.factor`` (refusing the two when they disagree)."""
    data = values.get("data")
    if "degradation" not in {f.name for f in dataclasses.fields(cls)} or not isinstance(data, dict):
        return values
    if "scale" not in data:
        return values
    values = {**values, "data": {k: v for k, v in data.items() if k != "scale"}}
    degradation = dict(values.get("degradation") or {})
    if "factor" in degradation and degradation["factor"] != data["scale"]:
        raise ConfigError(f"{where}data.scale (the old name of degradation.factor) disagrees with degradation.factor")
    degradation["factor"] = data["scale"]
    values["degradation"] = degradation
    return values


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from nested dicts, refusing unknown keys (suggesting the nearest), wrong types
    and values out of range (old names translated first)."""
    config = _from_dict(cls, _translated(cls, values, where), where)
    if not where:
        check(config)
    return config


def _from_dict(cls, values: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"{where}{key}: unknown key{hint}")
    kwargs = {name: _convert(hints[name], value, f"{where}{name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return _from_dict(hint, value, where + ".")
    if origin is Literal:
        choices = typing.get_args(hint)
        if isinstance(value, bool) or value not in choices:
            near = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            tip = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}{tip}")
        return value
    if origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, list) or len(value) != len(items):
            raise ConfigError(f"{where}: expected a list of {len(items)}")
        return tuple(_convert(item, v, f"{where}[{i}]") for i, (item, v) in enumerate(zip(items, value)))
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, bool) and hint is not bool:
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is float and isinstance(value, int):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return value


def shipped_configs() -> list[str]:
    """The names of the configs shipped inside the package."""
    return sorted(p.name for p in CONFIG_DIR.iterdir() if p.name.endswith(".toml"))


def resolve_config_path(name_or_path) -> Path:
    """A config file as given, else a shipped config by name (``rrdb_kspace`` or ``rrdb_kspace.toml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name if path.name.endswith(".toml") else path.name + ".toml"
    shipped = CONFIG_DIR / name
    if shipped.is_file():
        return Path(str(shipped))
    near = difflib.get_close_matches(name, shipped_configs(), n=1)
    tip = f"; did you mean {near[0]!r}?" if near else f"; shipped configs: {', '.join(shipped_configs())}"
    raise ConfigError(f"{name_or_path}: no such config file or shipped config{tip}")


def load_config(path: Path, cls=SRGANConfig):
    """Read a TOML file (or a shipped config by name) into ``cls``; a missing key keeps its default."""
    path = resolve_config_path(path)
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from None
    try:
        return from_dict(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_toml(config) -> str:
    """A config dataclass (or a dict of its sections) as TOML (tables for dataclasses, arrays of tables for lists of
    them), by tomli-w."""
    import tomli_w

    return tomli_w.dumps(dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config)
