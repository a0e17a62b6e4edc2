"""Writing realistic DICOM cine series with pydicom for the tests: one MR image per slice and phase, an oblique
orientation, RescaleSlope/Intercept, 12-bit pixels, shuffled file names, and other series beside it."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EnhancedMRImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid


def oblique(angle_deg: float = 25.0):
    """Row and column directions of a double-oblique plane (unit, orthogonal), like a short-axis cine's."""
    a, b = np.radians(angle_deg), np.radians(angle_deg / 2)
    rot_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rot_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    rotation = rot_x @ rot_z
    return rotation[:, 0], rotation[:, 1]


@dataclass
class Cine:
    """A cine to write: ``values[x, y, slice, phase]`` in real units (stored = (value - intercept) / slope)."""

    values: np.ndarray
    spacing: tuple[float, float] = (1.4, 1.3)  # PixelSpacing: between rows (y), between columns (x)
    gap: float = 8.0  # mm between slice positions along the normal
    origin: tuple[float, float, float] = (-120.5, -95.25, 40.0)  # LPS, first slice
    orientation: tuple = field(default_factory=oblique)
    slope: float = 2.0
    intercept: float = -10.0
    slice_slopes: tuple[float, ...] | None = None  # a slope per slice instead (a series scaled image by image)
    trigger_ms: float = 32.5
    series_number: int = 7
    description: str = "cine_retro_sax"
    study_uid: str = field(default_factory=generate_uid)
    manufacturer: str = "ACME Medical"
    frame_uid: str = field(default_factory=generate_uid)

    @property
    def normal(self) -> np.ndarray:
        row, col = self.orientation
        return np.cross(row, col)

    def slope_of(self, z: int) -> float:
        return self.slope if self.slice_slopes is None else self.slice_slopes[z]

    def position(self, z: int) -> np.ndarray:
        return np.asarray(self.origin) + z * self.gap * self.normal


def write_cine(folder: Path, cine: Cine, seed: int = 0, prefix: str = "", **changes) -> list[Path]:
    """Write the series into ``folder`` (shuffled file names after ``prefix``, which keeps several series apart in
    one folder), each header updated by ``changes(z, t, ds)`` hooks given as ``edit=callable``; return the files in
    slice-phase order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    x, y, depth, phases = cine.values.shape
    series_uid = generate_uid()
    names = rng.permutation(depth * phases)
    row, col = cine.orientation
    files = []
    for z in range(depth):
        for t in range(phases):
            ds = _header(cine, series_uid)
            ds.InstanceNumber = 1 + z * phases + t
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
            ds.ImagePositionPatient = [f"{v:.4f}" for v in cine.position(z)]
            ds.SliceLocation = f"{float(cine.position(z) @ cine.normal):.4f}"
            ds.TriggerTime = f"{t * cine.trigger_ms:.2f}"
            stored = np.round((cine.values[:, :, z, t] - cine.intercept) / cine.slope_of(z)).astype(np.uint16)
            ds.set_pixel_data(np.ascontiguousarray(stored.T), "MONOCHROME2", 12)
            ds.RescaleSlope = f"{cine.slope_of(z):g}"
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            if "edit" in changes:
                changes["edit"](z, t, ds)
            path = folder / f"{prefix}{names[z * phases + t]:08x}"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
    return files


def _header(cine: Cine, series_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = cine.manufacturer
    ds.PatientName = "Test^Cine"
    ds.PatientID = "HSR-0001"
    ds.StudyInstanceUID = cine.study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = cine.series_number
    ds.SeriesDescription = cine.description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.PixelSpacing = [f"{cine.spacing[0]:g}", f"{cine.spacing[1]:g}"]
    ds.SliceThickness = f"{cine.gap:g}"
    ds.RescaleSlope = f"{cine.slope:g}"
    ds.RescaleIntercept = f"{cine.intercept:g}"
    ds.FrameOfReferenceUID = cine.frame_uid
    return ds


def write_enhanced(path: Path, cine: Cine, shared_geometry: bool = True, component=None) -> Path:
    """The same cine as ONE enhanced MR multi-frame file (frames in shuffled order): each frame's position and
    trigger delay in its per-frame functional groups; orientation, spacing and rescale shared (or per frame);
    ``component(z, t)``, if given, each frame's ComplexImageComponent (MR Image Frame Type)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x, y, depth, phases = cine.values.shape
    ds = _header(cine, generate_uid())
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    for keyword in ("PixelSpacing", "SliceThickness", "RescaleSlope", "RescaleIntercept"):
        delattr(ds, keyword)
    row, col = cine.orientation
    geometry = Dataset()
    geometry.PixelMeasuresSequence = [Dataset()]
    geometry.PixelMeasuresSequence[0].PixelSpacing = [f"{cine.spacing[0]:g}", f"{cine.spacing[1]:g}"]
    geometry.PixelMeasuresSequence[0].SliceThickness = f"{cine.gap:g}"
    geometry.PlaneOrientationSequence = [Dataset()]
    geometry.PlaneOrientationSequence[0].ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    geometry.PixelValueTransformationSequence = [Dataset()]
    geometry.PixelValueTransformationSequence[0].RescaleSlope = f"{cine.slope:g}"
    geometry.PixelValueTransformationSequence[0].RescaleIntercept = f"{cine.intercept:g}"
    order = np.random.default_rng(3).permutation(depth * phases)
    frames, stored = [], []
    for index in order:
        z, t = divmod(int(index), phases)
        groups = Dataset() if shared_geometry else copy.deepcopy(geometry)
        groups.PlanePositionSequence = [Dataset()]
        groups.PlanePositionSequence[0].ImagePositionPatient = [f"{v:.4f}" for v in cine.position(z)]
        groups.CardiacSynchronizationSequence = [Dataset()]
        groups.CardiacSynchronizationSequence[0].NominalCardiacTriggerDelayTime = float(t * cine.trigger_ms)
        groups.FrameContentSequence = [Dataset()]
        groups.FrameContentSequence[0].InStackPositionNumber = z + 1
        groups.FrameContentSequence[0].TemporalPositionIndex = t + 1
        if component is not None:
            groups.MRImageFrameTypeSequence = [Dataset()]
            groups.MRImageFrameTypeSequence[0].ComplexImageComponent = component(z, t)
        frames.append(groups)
        values = np.round((cine.values[:, :, z, t] - cine.intercept) / cine.slope).astype(np.uint16)
        stored.append(np.ascontiguousarray(values.T))
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.SharedFunctionalGroupsSequence = [geometry if shared_geometry else Dataset()]
    ds.set_pixel_data(np.stack(stored), "MONOCHROME2", 12)
    ds.NumberOfFrames = len(stored)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def write_localiser(folder: Path, study_uid: str) -> None:
    """A three-image localiser series (one image in each of three orthogonal planes) in the same study."""
    rng = np.random.default_rng(1)
    series_uid = generate_uid()
    planes = [((1, 0, 0, 0, 1, 0), (0, 0, 0)), ((1, 0, 0, 0, 0, -1), (0, 0, 0)), ((0, 1, 0, 0, 0, -1), (0, 0, 0))]
    for i, (orientation, position) in enumerate(planes):
        ds = _header(Cine(np.zeros((1, 1, 1, 1)), study_uid=study_uid), series_uid)
        ds.SeriesNumber, ds.SeriesDescription, ds.InstanceNumber = 1, "localizer", i + 1
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = list(position)
        ds.set_pixel_data(rng.integers(0, 4000, (64, 64)).astype(np.uint16), "MONOCHROME2", 12)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"loc{i}", enforce_file_format=True)


def read_back(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path)
