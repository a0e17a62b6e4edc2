"""A short-axis stack acquired one series per slice (one breath-hold each, as many scanners export a cine stack):
which image series of a folder join into one stack, and how ``--series`` names several series.

Series join when together they are one stack of parallel slices and nothing else: the same study, frame of
reference and patient; the same orientation, pixel grid and spacing; the same number of images at each of their
positions (the phases); the same kind (ImageType ORIGINAL or DERIVED); classic single-frame images; positions
that no two series share and that, together, are evenly spaced. Where two kinds of series share the positions
(a cine beside a scanner's inline analysis of it), each SeriesDescription family is tried on its own. A slice
acquired twice (two series at one position) or a missing one (uneven spacing) leaves the series apart, each a
scan of its own, with a note saying why, since which to keep is the lab's call: ``--series`` joins chosen ones,
and ``latest`` (``--repeated-slices latest``) keeps, at each position acquired more than once, the series acquired
last (by its acquisition, else series, date and time; else the higher SeriesNumber), leaving the earlier out.
"""

from __future__ import annotations

import os
import re

import numpy as np

from heart_sr_tf.data.dicom_geometry import ORIENTATION_TOLERANCE, POSITION_TOLERANCE, evenly_spaced, plane_of


def stack_units(groups: dict[str, list], notes: list[str] | None = None, latest: bool = False) -> list[list[str]]:
    """The folder's image series (``groups``: SeriesInstanceUID -> its headers) as units: each a list of UIDs,
    several for series joined into one stack (in slice order), one for a series on its own; in the order of
    their first SeriesNumber (``notes`` and ``latest``: as :func:`joined_units`)."""
    shapes = {uid: series_shape(headers) for uid, headers in groups.items()}
    return joined_units(shapes, {uid: series_number(headers[0]) for uid, headers in groups.items()}, notes, latest)


PHASES = 6  # where a series' phase count sits in its shape's key
SLICE_SUFFIX = "0123456789 _-."  # what ends a per-slice SeriesDescription (cine_sax_3): its family is the rest


def joined_units(
    shapes: dict[str, tuple | None],
    numbers: dict[str, int | None],
    notes: list[str] | None = None,
    latest: bool = False,
) -> list[list[str]]:
    """Series (UID -> :func:`series_shape`, and their SeriesNumbers) as units, as :func:`stack_units` gives them:
    series found apart (in sibling folders) join as those of one folder do. Three or more parallel series of one
    slice each that join nothing get a line in ``notes`` saying why (a slice acquired twice, or one missing).
    With ``latest``, a slice acquired twice is taken from its later series where the rest is then one stack: the
    earlier series is no unit at all, and ``notes`` names it."""
    joined, dropped = {}, {}
    for cluster in _parallel([uid for uid, shape in shapes.items() if shape is not None], shapes, lambda k: k):
        order, aside = _stack_of(cluster, shapes, numbers, latest)
        if order is None:  # series of two kinds at the same positions (a cine beside its inline analysis's
            families: dict[str, list[str]] = {}  # images): each kind by its description may be a stack
            for uid in cluster:
                families.setdefault(shapes[uid][4], []).append(uid)
            found = [_stack_of(members, shapes, numbers, latest) for members in families.values()]
            for order, aside in found:
                if order is not None:
                    joined.update({uid: order for uid in order})
                    dropped[tuple(order)] = aside
            if notes is not None and all(order is None for order, _ in found):
                notes += [line for line in (_why_apart(cluster, shapes, numbers),) if line]
        else:
            joined.update({uid: order for uid in order})
            dropped[tuple(order)] = aside
    for order in {tuple(order) for order in joined.values()}:  # a parallel series of another phase count in or
        if _interleaved(order, shapes):  # next to a stack's span: the stack is only some of a cine's slices
            for uid in order:
                joined.pop(uid)
            dropped.pop(order)
    left_out = {uid: (order, again) for order, aside in dropped.items() for uid, again in aside}
    if notes is not None:
        for uid, (order, again) in sorted(left_out.items(), key=lambda item: (numbers[item[0]] or 0, item[0])):
            notes.append(
                f"series {_number_text(numbers, uid)} left out: its slice was acquired again later, in series "
                f"{_number_text(numbers, again)}, which the stack of series "
                f"{series_numbers_text([numbers[u] for u in order])} takes (--repeated-slices latest)"
            )
    if notes is not None:  # one-slice series that would be one stack but for their phase counts
        lone = [uid for uid, shape in shapes.items() if shape is not None and uid not in joined and len(shape[3]) == 1]
        for cluster in _parallel(lone, shapes, _without_phases):
            counts = sorted({shapes[uid][0][PHASES] for uid in cluster})
            if len(cluster) >= 3 and len(counts) > 1:
                notes.append(
                    f"series {series_numbers_text([numbers[uid] for uid in cluster])} lie parallel, one slice each, "
                    f"but hold different numbers of phases ({', '.join(map(str, counts))}): each stays a scan of its "
                    "own (joining them would resample time)"
                )
    units, seen = [], set(left_out)
    for uid in sorted(shapes, key=lambda u: (numbers[u] is None, numbers[u] or 0, u)):
        if uid not in seen:
            unit = joined.get(uid, [uid])
            seen.update(unit)
            units.append(unit)
    return units


def _number_text(numbers: dict, uid: str) -> str:
    return "?" if numbers[uid] is None else str(numbers[uid])


def _stack_of(members: list[str], shapes: dict, numbers: dict, latest: bool) -> tuple[list[str] | None, list]:
    """``members`` in slice order if they are one stack (:func:`_stack_order`), with nothing left out; with
    ``latest``, else the stack they make once each slice acquired more than once is taken from its later series
    alone, and ``(series left out, the series that took its slice)`` for each series set aside; else None."""
    order = _stack_order(members, shapes)
    if order is not None or not latest:
        return order, []
    kept, aside = _latest_only(members, shapes, numbers)
    order = _stack_order(kept, shapes) if aside else None
    return (order, aside) if order is not None else (None, [])


def _latest_only(members: list[str], shapes: dict, numbers: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """``members`` with, at each position that several one-slice series hold, only the one acquired last (by
    :func:`acquired` where all of them have it and it differs, else by SeriesNumber where those differ), and each
    series set aside with the one kept; nothing set aside where any of the series holds several slices or the
    latest cannot be told."""
    if any(len(shapes[uid][3]) != 1 for uid in members):
        return members, []
    normal = shapes[members[0]][2]
    at = sorted(members, key=lambda uid: float(shapes[uid][3][0] @ normal))
    groups: list[list[str]] = []
    for uid in at:
        here = float(shapes[uid][3][0] @ normal)
        if groups and here - float(shapes[groups[-1][0]][3][0] @ normal) <= POSITION_TOLERANCE:
            groups[-1].append(uid)
        else:
            groups.append([uid])
    kept, aside = [], []
    for group in groups:
        if len(group) > 1:
            last = _last_acquired(group, shapes, numbers)
            if last is None:
                return members, []
            aside += [(uid, last) for uid in group if uid != last]
            group = [last]
        kept += group
    return kept, aside


def _last_acquired(group: list[str], shapes: dict, numbers: dict) -> str | None:
    """The series of ``group`` acquired last, or None when that cannot be told (times and numbers missing or
    tied). Times compare with their dates where every series gives one, else as times of day."""
    times = [shapes[uid][5] for uid in group]
    keys = [lambda uid: numbers[uid]]
    if all(clock is not None for _, clock in times):
        dated = all(date for date, _ in times)
        keys.insert(0, lambda uid: shapes[uid][5] if dated else shapes[uid][5][1])
    for key in keys:
        values = [key(uid) for uid in group]
        if all(v is not None for v in values):
            ranked = sorted(zip(values, group, strict=True))
            if ranked[-1][0] != ranked[-2][0]:
                return ranked[-1][1]
    return None


def acquired(ds) -> tuple[str, float | None]:
    """When an image was acquired: its date (``YYYYMMDD``, "" where none is given) and the seconds since that
    day's midnight (None where no time is given), from AcquisitionDateTime, else AcquisitionDate and
    AcquisitionTime, else SeriesDate and SeriesTime. Times may be given to the hour, minute, second or fraction,
    and in the colon-separated form of old exports; a UTC offset is dropped (one scanner's series share it)."""
    value = re.split(r"[+-]", str(ds.get("AcquisitionDateTime", "") or "").strip())[0]
    if len(value) > 8 and value[:8].isdigit():
        return value[:8], _seconds(value[8:])
    for date, time in (("AcquisitionDate", "AcquisitionTime"), ("SeriesDate", "SeriesTime")):
        seconds = _seconds(str(ds.get(time, "") or ""))
        if seconds is not None:
            day = str(ds.get(date, "") or "").strip().replace(".", "")
            return (day if len(day) == 8 and day.isdigit() else ""), seconds
    return "", None


def _seconds(clock: str) -> float | None:
    """A DICOM time (``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.FFFFFF``, or ``HH:MM:SS.FFFFFF``) in seconds since
    midnight; None if it is none of these."""
    match = re.fullmatch(r"(\d\d)(?::?(\d\d)(?::?(\d\d)(\.\d{1,6})?)?)?", clock.strip())
    if match is None:
        return None
    hours, minutes, seconds, fraction = match.groups()
    return int(hours) * 3600 + int(minutes or 0) * 60 + int(seconds or 0) + float(fraction or 0)


def _without_phases(key: tuple) -> tuple:
    return key[:PHASES] + key[PHASES + 1 :]


def _interleaved(order: tuple, shapes: dict) -> bool:
    """Whether a series parallel to the stack ``order`` (same study, grid and kind) but of another phase count
    lies within the stack's span or next to it (within one and a half spacings), at a position none of the stack's
    slices holds: the stack's slices are then only some of the cine's (one acquired with per-breath-hold phase
    counts). One at a slice's own position is another acquisition there (a real-time cine of one slice)."""
    first = shapes[order[0]]
    normal = first[2]
    along = sorted(float(p @ normal) for uid in order for p in shapes[uid][3])
    reach = 1.5 * float(np.median(np.diff(along)))
    low, high = along[0] - reach, along[-1] + reach
    for uid, shape in shapes.items():
        if shape is None or uid in order or _without_phases(shape[0]) != _without_phases(first[0]):
            continue
        if np.abs(shape[1] - first[1]).max() <= ORIENTATION_TOLERANCE and shape[0][PHASES] != first[0][PHASES]:
            for p in shape[3]:
                at = float(p @ normal)
                if low < at < high and min(abs(at - q) for q in along) > POSITION_TOLERANCE:
                    return True
    return False


def _parallel(uids: list[str], shapes: dict, key_of) -> list[list[str]]:
    """``uids`` grouped by ``key_of(their key)`` and orientation (within the tolerance)."""
    clusters: list[list[str]] = []
    for uid in uids:
        for cluster in clusters:
            other = shapes[cluster[0]]
            if key_of(other[0]) == key_of(shapes[uid][0]):
                if np.abs(other[1] - shapes[uid][1]).max() <= ORIENTATION_TOLERANCE:
                    cluster.append(uid)
                    break
        else:
            clusters.append([uid])
    return clusters


def _why_apart(cluster: list[str], shapes: dict, numbers: dict) -> str | None:
    """Why three or more parallel series of one slice each are no stack; None for other series."""
    if len(cluster) < 3 or any(len(shapes[uid][3]) != 1 for uid in cluster):
        return None
    normal = shapes[cluster[0]][2]
    at = sorted((float(shapes[uid][3][0] @ normal), uid) for uid in cluster)
    name = {uid: "?" if numbers[uid] is None else str(numbers[uid]) for uid in cluster}
    which = f"series {series_numbers_text([numbers[uid] for uid in cluster])} lie parallel, one slice each"
    for (p, a), (q, b) in zip(at, at[1:], strict=False):
        if q - p <= POSITION_TOLERANCE:
            first, second = sorted((a, b), key=lambda uid: (numbers[uid] is None, numbers[uid] or 0))
            reason = f"series {name[first]} and {name[second]} lie at one position (a slice acquired twice?)"
            order, _ = _stack_of(cluster, shapes, numbers, latest=True)
            if order is not None and all(numbers[uid] is not None for uid in order):
                return (
                    f"{which}, but are no one stack: {reason}; each stays a scan of its own (--series "
                    f"{series_numbers_text([numbers[uid] for uid in order])} joins them, each slice from its latest "
                    "series, as --repeated-slices latest does wherever a slice was acquired again)"
                )
            break
    else:
        gaps = np.diff([p for p, _ in at])
        i = int(np.argmax(np.abs(gaps - np.median(gaps))))
        reason = (f"{gaps[i]:.2f} mm between series {name[at[i][1]]} and {name[at[i + 1][1]]}, where the others "
                  f"are {np.median(gaps):.2f} mm apart (a slice missing?)")  # fmt: skip
    return f"{which}, but are no one stack: {reason}; each stays a scan of its own (--series joins chosen ones)"


def _stack_order(cluster: list[str], shapes: dict) -> list[str] | None:
    """The series of ``cluster`` in slice order if they are one stack (at least three of them, no position shared,
    evenly spaced together), else None."""
    if len(cluster) < 3:  # (two parallel slices are as likely two separate views: --series joins them if asked)
        return None
    normal = shapes[cluster[0]][2]
    positions = sorted((p @ normal, uid) for uid in cluster for p in shapes[uid][3])
    along = [p for p, _ in positions]
    if np.min(np.diff(along)) <= POSITION_TOLERANCE or not evenly_spaced(along):
        return None
    return list(dict.fromkeys(uid for _, uid in positions))


def series_shape(headers: list) -> tuple | None:
    """What a series must share with another to join it in a stack (a key, its orientation and normal), its
    positions, and its description's family (without a trailing slice number: ``cine_sax_3`` -> ``cine_sax``);
    None for a series that cannot join one (no usable geometry, several planes, multi-frame files, uneven phase
    counts). Original and derived images never join (ImageType's first value is in the key)."""
    planes = [plane_of(ds) for ds in headers]
    if any(p is None for p in planes) or any(int(ds.get("NumberOfFrames") or 1) > 1 for ds in headers):
        return None
    first = planes[0]
    if any(np.abs(p.orientation - first.orientation).max() > ORIENTATION_TOLERANCE for p in planes):
        return None
    if any(np.abs(p.spacing - first.spacing).max() > 1e-4 for p in planes):
        return None
    normal = first.normal
    positions: list[list] = []
    for p in planes:
        at = next((group for group in positions if abs((group[0] - p.position) @ normal) < POSITION_TOLERANCE), None)
        if at is None:
            positions.append([p.position])
        else:
            at.append(p.position)
    if len({len(group) for group in positions}) != 1:
        return None
    ds = headers[0]
    key = (
        *(str(ds.get(k, "") or "") for k in ("StudyInstanceUID", "FrameOfReferenceUID", "PatientID")),
        int(ds.get("Rows", 0)),
        int(ds.get("Columns", 0)),
        tuple(np.round(first.spacing, 4)),
        len(positions[0]),  # images per position: the phases (at index PHASES)
        _image_kind(ds),
    )
    family = str(ds.get("SeriesDescription", "") or "").strip().rstrip(SLICE_SUFFIX).lower()
    return key, first.orientation, normal, [group[0] for group in positions], family, acquired(ds)


def _image_kind(ds) -> str:
    """ImageType's first value: ORIGINAL or DERIVED (a single value reads as a string, several as a list)."""
    value = ds.get("ImageType") or ""
    first = value if isinstance(value, str) else (list(value) or [""])[0]
    return str(first).split("\\")[0].strip().upper()


def series_number(ds) -> int | None:
    """A header's SeriesNumber, None where it has none."""
    value = ds.get("SeriesNumber")
    return int(value) if value not in (None, "") else None


def parse_pick(series: int | str) -> list[tuple]:
    """``--series``'s value as what it names: ``("number", 7)``, ``("range", 5, 16)`` (every series numbered 5 to
    16) or ``("uid", "1.2.3")``, several separated by commas (series to join into one stack)."""
    if isinstance(series, int):
        return [("number", series)]
    picks = []
    for token in (t.strip() for t in str(series).split(",")):
        if token.isdigit():
            picks.append(("number", int(token)))
        elif re.fullmatch(r"\d+-\d+", token):
            low, high = (int(v) for v in token.split("-"))
            picks.append(("range", min(low, high), max(low, high)))
        elif token:
            picks.append(("uid", token))
    return picks


def picks_series(pick: tuple, uid: str, ds) -> bool:
    """Whether ``pick`` (from :func:`parse_pick`) names the series ``uid``, whose first header is ``ds``."""
    number = series_number(ds)
    if pick[0] == "uid":
        return uid == pick[1]
    if pick[0] == "number":
        return number == pick[1]
    return number is not None and pick[1] <= number <= pick[2]


def series_numbers_text(numbers: list[int | None]) -> str:
    """Series numbers for a line or a name, runs of three or more as ranges: ``7``, ``5-16``, ``5-9,22``, ``5,7``
    (which ``--series`` reads back); ``?`` for a series without one."""
    known = sorted(n for n in numbers if n is not None)
    if len(known) != len(numbers) or not known:
        return ",".join("?" if n is None else str(n) for n in numbers) or "?"
    runs: list[list[int]] = []
    for n in known:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs)


def stack_description(descriptions: list[str]) -> str:
    """One SeriesDescription for series joined into a stack: theirs when they share it, else the part they share
    (``cine_sax_slice1`` ... ``cine_sax_slice12``: ``cine_sax_slice``), else the first series'."""
    texts = [str(d or "").strip() for d in descriptions]
    if len(set(texts)) <= 1:
        return texts[0] if texts else ""
    shared = os.path.commonprefix(texts).rstrip(SLICE_SUFFIX)
    return shared or texts[0]
