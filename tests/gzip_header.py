"""The file name a gzip stream's header records (RFC 1952's FNAME), which ``gunzip -N`` restores."""

from pathlib import Path

FEXTRA, FNAME = 0x04, 0x08


def recorded_name(path: Path) -> str | None:
    with open(path, "rb") as stream:
        head = stream.read(1024)
    assert head[:2] == b"\x1f\x8b", f"{path} is not gzip-compressed"
    flags, start = head[3], 10
    if flags & FEXTRA:
        start += 2 + int.from_bytes(head[10:12], "little")
    if not flags & FNAME:
        return None
    return head[start : head.index(b"\0", start)].decode("latin-1")
