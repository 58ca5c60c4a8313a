"""Safe expansion of an uploaded ZIP: limits on count, size, nesting and member names.

A ZIP's directory can lie about sizes, so every member is read in chunks and counted as it
is decompressed; the first byte over the limit stops the expansion. Member names are checked
before anything is read: absolute paths, ``..`` components, drive letters and nested archives
are refused (the caller refuses the whole upload, so nothing is half-ingested).
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from app.errors import Invalid, TooLarge

_CHUNK = 1 << 20
_SKIP_PREFIXES = ("__MACOSX/",)
ARCHIVE_SUFFIXES = (".zip",)


@dataclass(frozen=True)
class ZipLimits:
    max_files: int
    max_total_bytes: int


@dataclass(frozen=True)
class ZipMember:
    name: str  # the member's path inside the archive (posix)
    data: bytes


def is_zip(filename: str, data: bytes) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES) or data[:4] == b"PK\x03\x04"


def _check_name(name: str) -> None:
    if "\x00" in name or "\\" in name:
        raise Invalid(f"ZIP member {name!r} has an invalid name.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise Invalid(f"ZIP member {name!r} has an absolute path; refused.")
    parts = name.split("/")
    if ".." in parts:
        raise Invalid(f"ZIP member {name!r} points outside the archive (path traversal); refused.")


def _skipped(name: str) -> bool:
    base = posixpath.basename(name)
    return name.endswith("/") or name.startswith(_SKIP_PREFIXES) or base.startswith(".")


def iter_zip(data: bytes, archive_name: str, limits: ZipLimits) -> Iterator[ZipMember]:
    """Yield the archive's files (not directories), enforcing ``limits`` while decompressing."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise Invalid(f"{archive_name}: not a valid ZIP archive.") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            _check_name(info.filename)
        members = [i for i in infos if not _skipped(i.filename)]
        if len(members) > limits.max_files:
            raise TooLarge(
                f"{archive_name}: {len(members)} files; at most {limits.max_files} are accepted "
                "in one ZIP."
            )
        total = 0
        for info in members:
            if info.flag_bits & 0x1:
                raise Invalid(f"{archive_name}: {info.filename} is encrypted; refused.")
            buf = bytearray()
            try:
                with archive.open(info) as fh:
                    while chunk := fh.read(_CHUNK):
                        total += len(chunk)
                        if total > limits.max_total_bytes:
                            raise TooLarge(
                                f"{archive_name}: more than {limits.max_total_bytes // 2**20} MiB "
                                "uncompressed; refused."
                            )
                        buf += chunk
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise Invalid(f"{archive_name}: {info.filename} is corrupt ({exc}).") from None
            content = bytes(buf)
            if is_zip(info.filename, content):
                raise Invalid(
                    f"{archive_name}: {info.filename} is a nested archive; "
                    "put all files in one ZIP."
                )
            yield ZipMember(info.filename, content)
