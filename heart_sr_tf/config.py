"""Typed hyper-parameters: one dataclass per part, loaded from TOML files in ``configs/``."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from heart_sr_tf.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class DataConfig:
    scale: int = 3
    patch: int = 96  # HR patch side in pixels, a multiple of scale
    batch_size: int = 16  # global batch, split over replicas
    patches_per_slice: int = 4
    shuffle_buffer: int = 1024
    phantom_patients: int = 10
    split_seed: int = 0
    validation_slices: int = 32  # whole validation slices scored during training


@dataclass
class DegradationConfig:
    """How LR is made from HR (heart_sr_tf/data/degradation.py and kspace.py)."""

    kind: str = "decimation"  # "decimation": LR = HR[::s, ::s] (the paper); "kspace": central 1/s of the spectrum
    window: str = "none"  # kspace only: "none", "hamming" or "tukey" weighting of the kept spectrum
    tukey_alpha: float = 0.5  # kspace, tukey only: the tapered fraction of the band
    noise_sigma: list[float] = field(default_factory=lambda: [0.0, 0.0])  # kspace only: Rician, sigma ~ U[lo, hi]


@dataclass
class GeneratorConfig:
    blocks: int = 4
    features: int = 32
    growth: int = 16
    residual_scale: float = 0.2
    bicubic_skip: bool = True


@dataclass
class DiscriminatorConfig:
    features: int = 32
    stages: int = 4


@dataclass
class LossConfig:
    pixel: str = "mse"  # "mse" (the paper) or "l1"
    pixel_weight: float = 1.0
    feature_weight: float = 0.0  # VGG19 feature loss; needs the ImageNet weights
    adversarial_weight: float = 1e-3
    vgg_layer: str = "block5_conv4"
    vgg_weights: str = "imagenet"  # "imagenet" (Keras cache), "random" (tests only) or a file


@dataclass
class OptimConfig:
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    beta_1: float = 0.9
    beta_2: float = 0.999
    schedule: str = "constant"  # or "cosine": decay to lr * final_lr_fraction over all generator steps
    final_lr_fraction: float = 0.05


@dataclass
class Stage:
    name: str
    adversarial: bool  # False: generator alone on the pixel loss (pre-training)
    roi: str = "full"  # "full" slices or "heart" boxes
    steps: int = 100


@dataclass
class TrainConfig:
    stages: list[Stage] = field(
        default_factory=lambda: [
            Stage("pretrain-full", False, "full", 150),
            Stage("pretrain-heart", False, "heart", 50),
            Stage("gan-full", True, "full", 100),
            Stage("gan-heart", True, "heart", 50),
        ]
    )
    log_every: int = 25
    checkpoint_every: int = 50
    validate_every: int = 100
    image_every: int = 100
    keep_checkpoints: int = 3
    mixed_precision: str = "no"  # "no", "float16" or "bfloat16" (GPU)
    jit_compile: bool = False  # XLA (GPU); never together with MirroredStrategy on CPU


@dataclass
class SRGANConfig:
    data: DataConfig = field(default_factory=DataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class WGANDataConfig(DataConfig):
    dims: int = 2  # 2: slices; 3: volumes [H, W, D]
    axis: str = "slices"  # 3D only: D runs along "slices" or cine "frames"
    depth: int = 4  # 3D only: D of a training patch
    patch: int = 48
    batch_size: int = 8


@dataclass
class MDCSRNConfig:
    blocks: int = 4
    units: int = 4
    growth: int = 16
    bicubic_skip: bool = True


@dataclass
class CriticConfig:
    features: int = 32
    stages: int = 3


@dataclass
class WGANLossConfig:
    content: str = "l1"  # "l1" or "mse"
    lambda_gp: float = 10.0
    lambda_adv: float = 1e-3


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


@dataclass
class WGANTrainConfig:
    steps: int = 400  # total; phase 5 runs from the end of phase 4 to here
    log_every: int = 25
    checkpoint_every: int = 50
    validate_every: int = 100
    image_every: int = 100
    keep_checkpoints: int = 3
    mixed_precision: str = "no"
    jit_compile: bool = False


@dataclass
class WGANConfig:
    data: WGANDataConfig = field(default_factory=WGANDataConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    generator: MDCSRNConfig = field(default_factory=MDCSRNConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    loss: WGANLossConfig = field(default_factory=WGANLossConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(g_lr=1e-4, d_lr=1e-4, beta_1=0.5, beta_2=0.9))
    phases: PhaseConfig = field(default_factory=PhaseConfig)
    train: WGANTrainConfig = field(default_factory=WGANTrainConfig)


CONFIG_CLASSES = {"srgan": SRGANConfig, "wgan": WGANConfig}


def from_dict(cls, values: dict, where: str = ""):
    """Build dataclass ``cls`` from nested dicts, refusing unknown keys and wrong types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {', '.join(sorted(unknown))}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _convert(hints[name], value, f"{where}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def _convert(hint, value, where: str):
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return from_dict(hint, value, where + ".")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and value is True)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def load_config(path: Path, cls=SRGANConfig):
    """Read a TOML file into ``cls``; a missing key keeps its default."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    try:
        return from_dict(cls, values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def dump_toml(config) -> str:
    """Write a config dataclass as TOML (tables for dataclasses, arrays of tables for lists of them)."""
    lines: list[str] = []
    _dump(dataclasses.asdict(config), [], lines)
    return "\n".join(lines).strip() + "\n"


def _dump(values: dict, prefix: list[str], lines: list[str], array: bool = False) -> None:
    scalars = {k: v for k, v in values.items() if not isinstance(v, dict | list) or _plain_list(v)}
    if prefix:
        lines.append(("[[" if array else "[") + ".".join(prefix) + ("]]" if array else "]"))
    for key, value in scalars.items():
        lines.append(f"{key} = {_value(value)}")
    lines.append("")
    for key, value in values.items():
        if isinstance(value, dict):
            _dump(value, prefix + [key], lines)
        elif isinstance(value, list) and not _plain_list(value):
            for item in value:
                _dump(item, prefix + [key], lines, array=True)


def _plain_list(value) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict) for v in value)


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return repr(value)
