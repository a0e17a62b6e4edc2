"""A run folder ``runs/<name>/`` and its one owner, :class:`Run`.

The folder holds ``config.toml`` (the resolved config), ``kind`` (srgan or wgan), ``data_dir`` (the prepared
dataset it trains on), optionally ``init_from`` (the run or export its generator started from), ``logs/``
(TensorBoard), ``checkpoints/`` and ``metrics.csv``, and ``trained_for.toml``: what its network learns (the
degradation), which ``config.toml`` may not change once the run exists (its schedule it may: raising steps extends
the run). Nothing else reads or writes these files. While a process trains it, the folder holds that process's
lock (:meth:`Run.held`).
"""

from __future__ import annotations

import csv
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import tomllib

from heart_sr_tf.config import CONFIG_CLASSES, SRGANConfig, WGANConfig, dump_toml, load_config
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.folder_lock import folder_lock
from heart_sr_tf.names import check_folder_name
from heart_sr_tf.outputs import check_place, make_folder
from heart_sr_tf.path_text import PATH_TEXT

CSV_FIELDS = (
    "step",
    "stage",
    "wall_s",
    "g_loss",
    "d_loss",
    "pixel",
    "feature",
    "adversarial",
    "content",
    "gp",
    "w_distance",
    "val_psnr",
    "val_ssim",
)


RUN_CONFIG = "config.toml"
TASK_FILE = "trained_for.toml"


def _task(config) -> dict:
    """What a run's network learns, which its config may not change once the run exists: the degradation (its
    noise aside, an augmentation) and, for a 3D WGAN, the axis its volumes' depth runs along."""
    task = {}
    if hasattr(config, "degradation"):
        task["degradation"] = {k: v for k, v in asdict(config.degradation).items() if k != "noise_sigma"}
    if getattr(config.data, "dims", 2) == 3:
        task["data"] = {"axis": config.data.axis}
    return task


def _check_task(folder: Path, config) -> None:
    """Refuse a run whose config.toml was edited to another task than it was created for (a degradation changed
    by hand, say kspace to decimation): training on would mix two tasks in one network, and an export or an
    evaluation would state and score the new one for a network that learnt the old. Runs from before
    ``trained_for.toml`` are not checked."""
    file = folder / TASK_FILE
    if not file.is_file():
        return
    try:
        recorded = tomllib.loads(file.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise HeartSRError(f"{file}: cannot read what the run was created for ({exc})") from None
    current = tomllib.loads(dump_toml(_task(config)))
    changed = [
        f"{section}.{key} is {current.get(section, {}).get(key)!r}, created as {value!r}"
        for section, values in recorded.items()
        for key, value in values.items()
        if current.get(section, {}).get(key) != value
    ]
    if changed:
        raise HeartSRError(
            f"{folder / RUN_CONFIG}: {'; '.join(changed)} ({TASK_FILE}): its network learnt the task it was created "
            f"for; put the value back, or train the new task in a new run starting from this one (--init-from {folder})"
        )


def checkpoint_step(checkpoint: str) -> int:
    """The step of a checkpoint path (``.../checkpoints/ckpt-N``)."""
    return int(Path(checkpoint).name.rpartition("-")[2])


def is_run_folder(path: Path) -> bool:
    """A training run's folder (it holds its config), as opposed to an exported model."""
    return (Path(path) / RUN_CONFIG).is_file()


def check_new_run(folder: Path) -> None:
    """A new run goes to a folder that does not exist yet or is empty: never into an earlier run (resume it) nor
    among files that are not a run's (its config.toml, metrics.csv, checkpoints/ would replace theirs)."""
    folder = Path(folder)
    check_place(folder)  # (the runs folder a link to nothing, or a file: one line, not a traceback after the data)
    if (folder / RUN_CONFIG).exists():
        raise HeartSRError(f"{folder}: run already exists; resume it with --resume {folder} or pick another name")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise HeartSRError(f"{folder}: exists and is not a run (no {RUN_CONFIG}); pick another --name or --runs-dir")


@dataclass
class Run:
    folder: Path
    config: SRGANConfig | WGANConfig
    kind: str = "srgan"

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.folder / "logs"

    @property
    def csv_path(self) -> Path:
        return self.folder / "metrics.csv"

    @property
    def data_dir(self) -> Path | None:
        """The prepared dataset the run trains on."""
        return self._read_path("data_dir")

    @property
    def init_from(self) -> Path | None:
        """The run or SavedModel the generator started from, if any."""
        return self._read_path("init_from")

    def use_data(self, data_dir: Path) -> None:
        """Train on ``data_dir`` from now on (a resumed run whose dataset moved)."""
        (self.folder / "data_dir").write_text(str(Path(data_dir).resolve()) + "\n", **PATH_TEXT)

    def _read_path(self, name: str) -> Path | None:
        file = self.folder / name
        return Path(file.read_text(**PATH_TEXT).strip()) if file.is_file() else None

    @classmethod
    def create(
        cls,
        root: Path,
        name: str | None,
        config,
        kind: str = "srgan",
        data_dir: Path | None = None,
        init_from: Path | None = None,
    ) -> Run:
        name = name or time.strftime(f"{kind}-%Y%m%d-%H%M%S")
        check_folder_name(name, "--name", "a run's name, one folder under the runs folder")
        folder = Path(root) / name
        check_new_run(folder)
        make_folder(folder)
        (folder / "config.toml").write_text(dump_toml(config))
        task = _task(config)
        if task:
            (folder / TASK_FILE).write_text(dump_toml(task))
        (folder / "kind").write_text(kind + "\n")
        if data_dir is not None:
            (folder / "data_dir").write_text(str(Path(data_dir).resolve()) + "\n", **PATH_TEXT)
        if init_from is not None:
            (folder / "init_from").write_text(str(Path(init_from).resolve()) + "\n", **PATH_TEXT)
        return cls(folder, config, kind)

    @classmethod
    def open(cls, folder: Path) -> Run:
        folder = Path(folder)
        if not is_run_folder(folder):
            raise HeartSRError(f"{folder}: not a run folder (no config.toml)")
        if not (folder / "kind").is_file():
            raise HeartSRError(f"{folder}: not a complete run folder (no kind file saying srgan, wgan or segmenter)")
        kind = (folder / "kind").read_text().strip()
        if kind not in CONFIG_CLASSES:
            raise HeartSRError(f"{folder / 'kind'}: unknown run kind {kind!r}")
        config = load_config(folder / "config.toml", CONFIG_CLASSES[kind])
        _check_task(folder, config)
        return cls(folder, config, kind)

    @contextmanager
    def held(self):
        """The run's folder held by this process while the block trains it: a second process training the same
        run (a resume in another terminal, a job requeued while the first still runs) is refused in one line
        naming the holder, instead of interleaving its rows in metrics.csv and overwriting its checkpoints."""
        with folder_lock(self.folder, "train"):
            yield self

    def discard_if_untrained(self) -> bool:
        """Remove this run's folder when it holds no checkpoint yet (a new run that failed or was interrupted
        before its first save), so that its name can be used again; True when removed."""
        import shutil

        if (self.checkpoint_dir / "checkpoint").is_file():
            return False
        shutil.rmtree(self.folder, ignore_errors=True)
        return True

    def check_scored_on(self, data_dir: Path) -> None:
        """Refuse to score this run on a dataset whose validation or test patients it trained on (another source
        folder, or another split seed). The run's own dataset, or one that is gone, is not checked."""
        own = self.data_dir
        if own is None or not own.is_dir() or Path(data_dir).resolve() == own.resolve():
            return
        from heart_sr_tf.data.prepare import split_assignment

        trained = {p for p, split in split_assignment(own).items() if split == "train"}
        leaked = sorted(p for p, split in split_assignment(data_dir).items() if split != "train" and p in trained)
        if leaked:
            raise HeartSRError(
                f"{data_dir}: {len(leaked)} of its validation/test patients ({', '.join(leaked[:3])}...) trained "
                f"{self.folder}; score it on its own dataset {own} or one with the same split"
            )

    # metrics.csv

    def metrics_rows(self) -> list[dict]:
        if not self.csv_path.exists():
            return []
        with self.csv_path.open() as f:
            return list(csv.DictReader(f))

    def last_metrics(self) -> dict:
        """The last row of metrics.csv, without its empty cells."""
        rows = self.metrics_rows()
        return {k: v for k, v in rows[-1].items() if v} if rows else {}

    def metrics_at(self, checkpoint: str) -> dict:
        """What metrics.csv logged at ``checkpoint``'s step (its rows merged, empty cells left out): the losses and
        validation of the network an export of that checkpoint carries, not of a later step."""
        step = checkpoint_step(checkpoint)
        merged: dict = {}
        for row in self.metrics_rows():
            if int(row["step"]) == step:
                merged.update({k: v for k, v in row.items() if v})
        return merged

    def losses_at(self, checkpoint: str) -> dict[str, float]:
        """The generator and discriminator losses last logged up to ``checkpoint``'s step: those of the network
        that checkpoint holds, not of later steps."""
        last = checkpoint_step(checkpoint)
        losses: dict[str, float] = {}
        for row in self.metrics_rows():
            if int(row["step"]) > last:
                continue
            for key in ("g_loss", "d_loss"):
                if row.get(key):
                    losses[key] = float(row[key])
        return losses

    def trim_metrics(self, last_step: int) -> None:
        """Drop rows logged after ``last_step`` (steps lost by a crash are trained again)."""
        if self.csv_path.exists():
            self._write_rows([r for r in self.metrics_rows() if int(r["step"]) <= last_step], mode="w")

    def log_metrics(self, row: dict) -> None:
        self._write_rows([row], mode="a")

    def _write_rows(self, rows, mode: str) -> None:
        """Every key of every row is a column: a new key (a loss term, a validation metric) widens the file,
        so nothing logged is dropped. The known columns come first, in their usual order."""
        existing = [] if mode == "w" else self.metrics_rows()
        keys = {k for row in [*existing, *rows] for k in row}
        fields = [f for f in CSV_FIELDS if f in keys or f in ("step", "stage", "wall_s")]
        fields += sorted(keys - set(fields))
        header = []
        if mode == "a" and self.csv_path.exists():
            with self.csv_path.open() as f:
                header = next(csv.reader(f), [])
        if mode == "a" and header == fields:
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=fields).writerows(rows)
            return
        tmp = self.csv_path.with_name(self.csv_path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows([*existing, *rows])
        tmp.replace(self.csv_path)

    # checkpoints

    def latest_checkpoint(self) -> str:
        import tensorflow as tf

        try:
            latest = tf.train.latest_checkpoint(str(self.checkpoint_dir))
        except (ValueError, tf.errors.OpError) as exc:  # a damaged ``checkpoint`` index file
            raise HeartSRError(f"{self.checkpoint_dir}: unreadable checkpoint index ({str(exc)[:120]})") from None
        if latest is None:
            raise HeartSRError(f"{self.checkpoint_dir}: no checkpoint in this run yet")
        return latest

    def checkpoint_at(self, step: int) -> str:
        """The checkpoint of ``step`` (a validation chose it), if the run still keeps it."""
        path = self.checkpoint_dir / f"ckpt-{step}"
        if path.with_name(path.name + ".index").is_file():
            return str(path)
        kept = ", ".join(str(s) for s in self.kept_steps()) or "none"
        raise HeartSRError(f"{self.checkpoint_dir}: no checkpoint of step {step} (kept: {kept})")

    def kept_steps(self) -> list[int]:
        """The steps whose checkpoints the run keeps (``train.keep_checkpoints`` of them)."""
        steps = {checkpoint_step(p.name.removesuffix(".index")) for p in self.checkpoint_dir.glob("ckpt-*.index")}
        return sorted(steps)

    def restore_generator(self, generator, step: int | None = None) -> str:
        """Load the generator weights of the latest checkpoint (or of ``step``) into ``generator`` (same
        architecture)."""
        return self.restore_network(generator, "generator", step)

    def restore_network(self, network, key: str, step: int | None = None) -> str:
        """Load the weights checkpointed under ``key`` (``generator``, ``network``) into ``network``, at the latest
        checkpoint or at ``step``. A checkpoint that does not hold every weight of this architecture (a config
        edited since, a truncated file) is one error line."""
        import tensorflow as tf

        latest = self.latest_checkpoint() if step is None else self.checkpoint_at(step)
        try:
            status = tf.train.Checkpoint(**{key: list(network.weights)}).restore(latest)
            status.expect_partial()
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, IndexError, KeyError, tf.errors.OpError) as exc:
            message = str(exc).splitlines()[0][:160]
            raise HeartSRError(f"{latest}: does not hold this run's {key} as configured ({message})") from None
        return latest


def initialise_generator(source: Path, generator, factors: tuple[int, int] | None = None) -> str:
    """``--init-from``: a run folder (its latest checkpoint) or an exported SavedModel / model base path. The same
    architecture, or an RRDB generator trained for other ``factors`` of the same kind or with fewer blocks: see
    ``export.reader.copy_generator``, which both take."""
    source = Path(source)
    from heart_sr_tf.export.reader import load_exported_weights

    if is_run_folder(source):
        run = Run.open(source)
        if _adapted_rrdb(run.config, generator, factors):
            return _from_run(run, generator, factors)
        return run.restore_generator(generator)
    return load_exported_weights(source, generator, factors)


def _adapted_rrdb(config, generator, factors) -> bool:
    """Whether ``config`` describes an RRDB generator that ``generator`` adapts: fewer blocks, or other factors."""
    from heart_sr_tf.models.rrdb import trunk_blocks

    if not isinstance(config, SRGANConfig):
        return False
    have = trunk_blocks(w.path for w in generator.weights)
    other_factors = factors is not None and tuple(factors) != tuple(config.degradation.factors)
    return 0 < config.generator.blocks < have or other_factors


def _from_run(run: Run, generator, factors) -> str:
    """The run's generator (rebuilt from its config, its latest checkpoint restored) copied into ``generator`` as
    an export's would be (``copy_generator``)."""
    from heart_sr_tf.export.reader import copy_generator
    from heart_sr_tf.models.registry import make_generator

    trained = make_generator(run.config)
    latest = run.restore_generator(trained)
    saved = {w.path: w.numpy() for w in trained.weights}
    return copy_generator(latest, saved, run.config.degradation.factors, generator, factors)
