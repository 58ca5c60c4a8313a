"""Safe expansion of an uploaded ZIP: limits on count, size, nesting and member names.

A ZIP bomb is a few megabytes that inflate to gigabytes. Three limits answer it, all enforced
before or while decompressing, never after: the number of members, the uncompressed size of
each member and the total. The sizes the archive's directory declares are checked first (a
bomb is refused before a byte is inflated); every member is then also counted as it is
decompressed, in 1 MiB chunks streamed to a temporary file on disk, so a directory that lies
is caught at the first byte over the limit and memory holds one chunk at a time whatever the
archive says. Member names are checked before anything is read: absolute paths, ``..``
components, drive letters and nested archives are refused (the caller refuses the whole
upload, so nothing is half-ingested).
"""

from __future__ import annotations

import io
import posixpath
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from app.errors import Invalid, TooLarge

_CHUNK = 1 << 20
_SKIP_PREFIXES = ("__MACOSX/",)
ARCHIVE_SUFFIXES = (".zip",)
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class ZipLimits:
    max_files: int
    max_total_bytes: int
    max_member_bytes: int | None = None


@dataclass(frozen=True)
class ZipMember:
    name: str  # the member's path inside the archive (posix)
    path: Path  # the member's bytes, spooled to a temporary file (deleted with its folder)

    def read(self) -> bytes:
        return self.path.read_bytes()


def is_zip(filename: str, head: bytes) -> bool:
    """A ZIP by name or by its first bytes (``head``: at least the first four)."""
    return filename.lower().endswith(ARCHIVE_SUFFIXES) or head[:4] == ZIP_MAGIC


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


def _mib(n: int) -> int:
    return n // 2**20


def _too_big(archive: str, what: str, limit: int) -> TooLarge:
    return TooLarge(f"{archive}: {what} more than {_mib(limit)} MiB uncompressed; refused.")


def iter_zip(
    source: bytes | BinaryIO, archive_name: str, limits: ZipLimits, workdir: Path
) -> Iterator[ZipMember]:
    """Yield the archive's files (not directories), enforcing ``limits`` while decompressing.

    ``source`` is the archive (bytes, or a seekable file such as the upload's spooled
    temporary file); each member is written under ``workdir``, which the caller removes.
    """
    fh_source: BinaryIO = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        archive = zipfile.ZipFile(fh_source)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise Invalid(f"{archive_name}: not a valid ZIP archive.") from None
    member_limit = limits.max_member_bytes
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
        # What the directory declares: refuse a bomb before inflating anything.
        for info in members:
            if member_limit is not None and info.file_size > member_limit:
                raise _too_big(archive_name, f"{info.filename} is", member_limit)
        if sum(i.file_size for i in members) > limits.max_total_bytes:
            raise _too_big(archive_name, "the files are", limits.max_total_bytes)
        total = 0
        target = Path(workdir)
        for n, info in enumerate(members):
            if info.flag_bits & 0x1:
                raise Invalid(f"{archive_name}: {info.filename} is encrypted; refused.")
            out_path = target / f"member-{n}"
            size = 0
            try:
                with archive.open(info) as fh, out_path.open("wb") as out:
                    while chunk := fh.read(_CHUNK):
                        size += len(chunk)
                        total += len(chunk)
                        if member_limit is not None and size > member_limit:
                            raise _too_big(archive_name, f"{info.filename} is", member_limit)
                        if total > limits.max_total_bytes:
                            raise _too_big(archive_name, "the files are", limits.max_total_bytes)
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
                raise Invalid(f"{archive_name}: {info.filename} is corrupt ({exc}).") from None
            with out_path.open("rb") as check:
                head = check.read(4)
            if is_zip(info.filename, head):
                raise Invalid(
                    f"{archive_name}: {info.filename} is a nested archive; "
                    "put all files in one ZIP."
                )
            yield ZipMember(info.filename, out_path)


def new_workdir(base: Path) -> Path:
    """A private temporary folder for one upload's expanded members (under the data dir, so
    it is on the same disk as the store and not in a small tmpfs)."""
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="upload-", dir=base))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
