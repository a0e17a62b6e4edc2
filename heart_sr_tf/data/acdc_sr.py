"""TFDS builder ``acdc_sr``: ACDC slices at 256x256, full or cut to the heart box, split by patient.

Build it from a manual directory holding the ACDC download (or the phantoms)::

    python cli.py prepare --acdc-dir DIR [--data-dir DIR]

Images are stored as 16-bit PNG: quantising [0, 1] to 65535 levels keeps every stored slice
within ~107 dB PSNR of the freshly computed one. Patients are read, resized and PNG-encoded (OpenCV, lossless) on a
few threads, in order, so the dataset is the same whatever the number of cores.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import tensorflow_datasets as tfds

from heart_sr_tf.data.acdc import Patient, load_frames, load_labels, scan_patients
from heart_sr_tf.data.file_state import digest_files
from heart_sr_tf.data.scan_patients import ScanPatient, scan_patient_slices
from heart_sr_tf.data.slices import HEART_MARGIN, HR_SIZE, patient_slices
from heart_sr_tf.data.splits import split_patients
from heart_sr_tf.data.threads import ordered_map
from heart_sr_tf.errors import DataError

QUANT = 65535.0
ROIS = ("full", "heart")


class AcdcSr(tfds.core.GeneratorBasedBuilder):
    """ACDC cardiac cine slices for super-resolution."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="full", description="Whole 256x256 slices."),
        tfds.core.BuilderConfig(name="heart", description="Slices cut to the patient's heart box (+10 px)."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the ACDC dataset from https://www.creatis.insa-lyon.fr/Challenge/acdc/databases.html
    (or https://humanheart-project.creatis.insa-lyon.fr/database/) and pass the folder holding
    training/ and/or testing/ (or the patientXXX folders) as the manual directory:
    `python cli.py prepare --acdc-dir DIR`.
    """

    def __init__(
        self,
        *,
        split_seed=0,
        strict=False,
        patients=None,
        on_patient=None,
        source=None,
        fingerprint=None,
        boxes_by="",
        **kwargs,
    ):
        self.split_seed = split_seed
        self.strict = strict
        self.patients = patients  # already validated patients (ACDC's or scans'); ACDC's checked here when None
        self.source, self.fingerprint = source, fingerprint  # what the metadata records (default: the manual dir)
        self.boxes_by = boxes_by  # what drew a lab's scans' heart boxes (a segmenter), if anything did
        self.bad: list[str] = []
        self.on_patient = on_patient  # callback(patient_id) for progress reporting
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "hr": tfds.features.Image(shape=(None, None, 1), dtype=np.uint16),
                    "patient": tfds.features.Text(),
                    "group": tfds.features.Text(),
                    "slice": np.int32,
                    "frame": np.int32,
                    "spacing": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                    "box": tfds.features.Tensor(shape=(4,), dtype=np.int32),
                }
            ),
            metadata=tfds.core.MetadataDict(),
            homepage="https://www.creatis.insa-lyon.fr/Challenge/acdc/",
            citation=CITATION,
        )

    def _split_generators(self, dl_manager):
        patients = self.patients
        if patients is None:
            patients, bad = valid_patients(dl_manager.manual_dir, strict=self.strict)
            self.bad = [str(e) for e in bad]
        assignment = split_patients([(p.id, stratum(p), p.source_split) for p in patients], seed=self.split_seed)
        self.info.metadata["split_seed"] = self.split_seed
        self.info.metadata["source"] = self.source or str(Path(dl_manager.manual_dir).resolve())
        self.info.metadata["kind"] = "scans" if any(isinstance(p, ScanPatient) for p in patients) else "acdc"
        if self.boxes_by:
            self.info.metadata["heart_boxes"] = self.boxes_by
        scans = [p for p in patients if isinstance(p, ScanPatient)]
        if scans:  # where each patient's scans are: clinical validation reads the validation patients' again
            self.info.metadata["scans"] = {
                p.id: [[str(Path(s.path).resolve()), s.series, s.label] for s in p.scans] for p in scans
            }
        self.info.metadata["assignment"] = assignment
        self.info.metadata["fingerprint"] = self.fingerprint or source_fingerprint(Path(dl_manager.manual_dir))
        chosen = {
            split: [p for p in patients if assignment[p.id] == split] for split in ("train", "validation", "test")
        }
        if self.builder_config.name == "heart":  # only patients with labels (or a segmenter's boxes) have boxes:
            chosen = {split: [p for p in group if _boxed(p)] for split, group in chosen.items()}  # else none
        return {split: self._generate_examples(group) for split, group in chosen.items() if group}

    def _generate_examples(self, patients: list[Patient]):
        for patient, examples in ordered_map(self._patient_examples, patients):
            if isinstance(examples, DataError):
                if self.strict:
                    raise examples
                self.bad.append(str(examples))
                continue
            if self.on_patient is not None:
                self.on_patient(patient.id)
            yield from examples

    def _patient_examples(self, patient: Patient | ScanPatient):
        """``(patient, [(key, example), ...])``, or ``(patient, DataError)`` for a patient that cannot be read:
        run on a worker thread, so the error is handed back for the builder to judge."""
        try:
            if isinstance(patient, ScanPatient):
                slices = list(scan_patient_slices(patient, size=HR_SIZE))
            else:
                slices = list(patient_slices(patient, size=HR_SIZE, margin=HEART_MARGIN))
        except DataError as exc:
            return patient, exc
        examples = []
        for item in slices:
            if item.box is None and self.builder_config.name == "heart":
                continue
            box = item.box or (0, HR_SIZE, 0, HR_SIZE)
            image = item.image if self.builder_config.name == "full" else crop(item.image, box)
            key = f"{item.patient}_f{item.frame:02d}_s{item.slice:02d}"
            example = {
                "hr": png(quantise(image)),
                "patient": item.patient,
                "group": item.group,
                "slice": item.slice,
                "frame": item.frame,
                "spacing": np.asarray(item.spacing, np.float32),
                "box": np.asarray(box, np.int32),
            }
            examples.append((key, example))
        return patient, examples


def _boxed(patient: Patient | ScanPatient) -> bool:
    """Whether a patient can have heart boxes: ACDC's from its label files (an ACDC folder may hold patients
    without them, as the challenge's test set was released), a lab's scans from a segmenter's boxes. A split none
    of whose patients has any is left out of the heart config: TFDS cannot write a split without examples."""
    if isinstance(patient, ScanPatient):
        return any(patient.boxes)
    return bool(patient.label_paths)


def stratum(patient: Patient | ScanPatient) -> str:
    """The stratum of the patient split: ACDC's diagnostic group, or one for a lab's scans."""
    return patient.group if isinstance(patient, ScanPatient) else patient.info.group


def source_fingerprint(folder: Path) -> str:
    """A digest of every file's relative path, size and modification time under ``folder``: it changes when a
    patient is added, removed, fixed or replaced, so a dataset built from an older state is never reused."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return digest_files((path.relative_to(folder), path) for path in files)


def scans_fingerprint(patients: list[ScanPatient], boxes_by: str = "") -> str:
    """:func:`source_fingerprint` of a lab's scans: each patient's id and its scans' files (a DICOM series' files
    in its folder), so that regrouping the scans into patients changes it too; and what drew the heart boxes."""
    named = []
    for patient in patients:
        for scan in patient.scans:
            where = scan.path
            files = sorted(p for p in where.iterdir() if p.is_file()) if where.is_dir() else [where]  # none: missing
            named += [(f"{patient.id}\0{scan.series or ''}\0{path.resolve()}", path) for path in files]
    return digest_files(named) + (f"-boxes-{hashlib.sha1(os.fsencode(boxes_by)).hexdigest()[:8]}" if boxes_by else "")


def valid_patients(root, strict: bool = False, on_patient=None) -> tuple[list[Patient], list[DataError]]:
    """Scan ``root`` and load every patient once, so that bad ones are known before splitting."""
    patients, errors = scan_patients(root)
    if errors and strict:
        raise errors[0]
    good = []
    for patient, problem in ordered_map(_check_patient, patients):
        if problem is None:
            good.append(patient)
        elif strict:
            raise problem
        else:
            errors.append(problem)
        if on_patient is not None:
            on_patient(patient.id)
    return good, errors


def _check_patient(patient: Patient) -> tuple[Patient, DataError | None]:
    """Load a patient's frames and labels once (on a worker thread): the error, if they cannot be read."""
    try:
        frames, _ = load_frames(patient)
        load_labels(patient, frames[0][1].shape)
    except DataError as exc:
        return patient, exc
    return patient, None


def crop(image: np.ndarray, box) -> np.ndarray:
    """Cut a 2D image to ``(row0, row1, col0, col1)``."""
    r0, r1, c0, c1 = box
    return image[r0:r1, c0:c1]


def quantise(image: np.ndarray) -> np.ndarray:
    """[0, 1] float to uint16 as stored."""
    return np.round(np.clip(image, 0.0, 1.0) * QUANT).astype(np.uint16)


def png(image: np.ndarray) -> bytes:
    """A 2D uint16 image as a 16-bit greyscale PNG (lossless; OpenCV releases the GIL while it encodes, where
    TensorFlow's encoder costs an eager op per slice), the bytes the dataset's Image feature stores as they are."""
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"expected a 2D uint16 image, got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as PNG")
    return encoded.tobytes()


CITATION = """@article{bernard2018acdc,
  author  = {Bernard, O. and Lalande, A. and Zotti, C. and Cervenansky, F. and others},
  title   = {Deep Learning Techniques for Automatic MRI Cardiac Multi-structures Segmentation and
             Diagnosis: Is the Problem Solved?},
  journal = {IEEE Transactions on Medical Imaging},
  volume  = {37}, number = {11}, pages = {2514--2525}, year = {2018},
  doi     = {10.1109/TMI.2018.2837502}
}"""
