"""How an image's source file is named outside the server.

`Image.source_filename` keeps what the upload or import was called, which for files imported
from disk (the CLI, the demo) is the path on the server. Exports and pages show only the file's
own name: a server path tells a reader of the data nothing and the world where files live.
"""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath


def original_name(source_filename: str) -> str:
    """The file name without any folder, whichever separator the uploader's system used."""
    name = PureWindowsPath(PurePosixPath(source_filename).name).name
    return name or source_filename
