"""Where blob bytes live. One interface; the default keeps them content-addressed on disk."""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.utils.module_loading import import_string

CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The content is larger than the configured limit."""


@dataclass(frozen=True)
class StoredContent:
    digest: str  # SHA-256, hex
    size: int
    md5: str  # base64, as Content-MD5


class BlobBackend(ABC):
    """Stores immutable content by its SHA-256 digest."""

    @abstractmethod
    def put(self, chunks: Iterable[bytes], limit: int) -> StoredContent:
        """Store the concatenated chunks; raise TooLarge past ``limit`` bytes."""

    @abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """A readable, seekable file of the content."""

    @abstractmethod
    def exists(self, digest: str) -> bool: ...


class DiskBlobBackend(BlobBackend):
    """Content under ``{root}/sha256/ab/cdef...``; identical content is stored once."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        return self.root / "sha256" / digest[:2] / digest[2:]

    def put(self, chunks: Iterable[bytes], limit: int) -> StoredContent:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(limit)
                    sha.update(chunk)
                    md5.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = sha.hexdigest()
            target = self.path(digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            # Atomic: a reader sees no file or the whole file, never a partial one.
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return StoredContent(digest, size, base64.b64encode(md5.digest()).decode())

    def open(self, digest: str) -> BinaryIO:
        return self.path(digest).open("rb")

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()


@cache
def blob_backend() -> BlobBackend:
    return import_string(settings.WEIR_BLOB_BACKEND)(settings.WEIR_BLOB_ROOT)


def read_chunks(stream, size: int | None = None) -> Iterable[bytes]:
    """Read a stream in chunks (at most ``size`` bytes when given)."""
    remaining = size
    while remaining is None or remaining > 0:
        chunk = stream.read(CHUNK if remaining is None else min(CHUNK, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk
