"""File store under the data directory: images, checkpoints and maps.

Rows in the database hold *relative* paths (``images/ab/abcdef….png``); this module is the
only place that turns them into real paths, and it refuses anything that would escape the
store (absolute paths, ``..``, symlinks pointing outside). Writes are atomic (temporary file
in the same directory, fsync, ``os.replace``) so a crashed worker never leaves a half-written
file that a later run would mistake for a finished one.

Two naming schemes:
* ``put_content`` names a file by the SHA-256 of its bytes (deduplication for uploads);
* ``put_random`` names it with random hex (saliency maps: a name must not reveal the arm,
  and two arms that happen to produce identical bytes must still be two files).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path

from app.errors import NotFound

KINDS = ("images", "checkpoints", "maps", "masks")


class Storage:
    """Content-addressed and random-named files below ``root`` (the settings' data dir)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # ------------------------------------------------------------------ writing
    def put_content(self, kind: str, data: bytes, suffix: str, *, sync: bool = True) -> str:
        """Store ``data`` under its SHA-256 and return the relative path (idempotent)."""
        digest = hashlib.sha256(data).hexdigest()
        rel = self._rel(kind, digest, suffix)
        target = self.path(rel)
        if not target.exists():
            atomic_write(target, data, sync=sync)
        return rel

    def put_random(self, kind: str, data: bytes, suffix: str, *, sync: bool = True) -> str:
        """Store ``data`` under a fresh random name and return the relative path.

        ``sync=False`` skips the per-file fsync (≈10 ms each); the caller must then call
        :meth:`sync` once before recording the files in the database.
        """
        rel = self._rel(kind, secrets.token_hex(16), suffix)
        atomic_write(self.path(rel), data, sync=sync)
        return rel

    @staticmethod
    def sync() -> None:
        """Flush every pending write to disk: one call for a whole batch of files."""
        os.sync()

    def delete(self, rel: str) -> None:
        """Remove a stored file if present (used to undo a failed all-or-nothing ingest)."""
        self.path(rel).unlink(missing_ok=True)

    def delete_all(self, rels: Iterable[str]) -> None:
        """Remove stored files if present: the files of a deleted image, checkpoint or draft,
        run as a background task once the deleting transaction has committed."""
        for rel in rels:
            self.delete(rel)

    # ------------------------------------------------------------------ reading
    def path(self, rel: str) -> Path:
        """The absolute path of a stored relative path; refuses anything outside the store."""
        if not rel or os.path.isabs(rel) or "\\" in rel or "\x00" in rel:
            raise NotFound("No such file.")
        parts = Path(rel).parts
        if any(p in ("..", ".") for p in parts) or parts[0] not in KINDS:
            raise NotFound("No such file.")
        full = (self.root / rel).resolve()
        if not full.is_relative_to(self.root):
            raise NotFound("No such file.")
        return full

    def read(self, rel: str) -> bytes:
        full = self.path(rel)
        if not full.is_file():
            raise NotFound("No such file.")
        return full.read_bytes()

    def exists(self, rel: str) -> bool:
        try:
            return self.path(rel).is_file()
        except NotFound:
            return False

    @staticmethod
    def _rel(kind: str, name: str, suffix: str) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown storage kind {kind!r}")
        if suffix and not suffix.startswith("."):
            suffix = "." + suffix
        return f"{kind}/{name[:2]}/{name}{suffix}"


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
