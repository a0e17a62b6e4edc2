"""A scan from disk, whatever its format: a NIfTI file, or a DICOM series (a folder, or one file of it).

Either way the result is the same :class:`Scan`: ``data`` float32 ``(x, y[, slices[, frames]])`` in the
scanner's units, and a NIfTI ``image`` that carries the geometry (affine, zooms) and the data type the output is
written in. A DICOM series also keeps its headers (``dicom``), so a derived DICOM series can be written back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from heart_sr_tf.data.dicom import DicomSeries, is_dicom, read_series
from heart_sr_tf.data.nifti import check_volume, load_nifti
from heart_sr_tf.errors import DataError


@dataclass
class Scan:
    path: Path
    data: np.ndarray
    image: nib.Nifti1Image
    dicom: DicomSeries | None = None

    @property
    def zooms(self) -> tuple[float, ...]:
        return tuple(float(z) for z in self.image.header.get_zooms())

    def label_values(self, most: int = 8) -> np.ndarray | None:
        """The distinct values when the scan holds at most ``most``, all whole numbers, as a label map does
        (a segmentation passed by mistake for the image), else None."""
        values = np.unique(self.data[..., 0] if self.data.ndim == 4 else self.data)  # one frame is enough to tell
        if len(values) > most or not np.all(values == np.round(values)):
            return None
        return values


def read_scan(path: Path, ndims=(2, 3, 4), series: int | None = None, min_inplane: int = 1) -> Scan:
    """The scan at ``path``, checked usable (``ndims``, in-plane size, finite, not all zero)."""
    path = Path(path)
    if path.exists() and is_dicom(path):
        dicom = read_series(path, series)
        data = dicom.data[..., 0] if dicom.data.shape[3] == 1 else dicom.data
        check_volume(path, data, ndims=ndims, min_inplane=min_inplane)
        return Scan(path, data, nifti_image(dicom, data), dicom)
    if series is not None:
        raise DataError(path, "--series picks a series of DICOM input; this is not a DICOM series")
    data, _ = load_nifti(path, ndims=ndims, min_inplane=min_inplane)
    return Scan(path, data, nib.load(str(path)))


def nifti_image(series: DicomSeries, data: np.ndarray) -> nib.Nifti1Image:
    """The series as NIfTI: its RAS affine (qform and sform, scanner space), zooms in mm (and s between
    phases), stored as int16 when every value is an integer in its range, else float32."""
    integer = np.all(data == np.round(data)) and data.min() >= -32768 and data.max() <= 32767
    image = nib.Nifti1Image(data.astype(np.int16) if integer else data, series.affine)
    image.set_qform(series.affine, 1)
    image.set_sform(series.affine, 1)
    image.header.set_zooms(series.zooms[: data.ndim])
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_data_dtype(np.int16 if integer else np.float32)
    return image
