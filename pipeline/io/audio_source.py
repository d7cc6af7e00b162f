"""Opening audio for decoding: local regular files, remote URIs and in-memory bytes, never blocking or unbounded.

- Local files are opened non-blocking and judged on the opened descriptor (``fstat``): anything but
  a regular file is refused before a byte is read. A FIFO would block the worker forever (and with
  it the good rows of its block), ``/dev/zero`` would feed it without end, a directory or a socket
  cannot be audio. The check follows symlinks to what they point at, and a path swapped for a FIFO
  after a check cannot slip through, because the check is on the descriptor that is read.
- Remote URIs go through pyarrow's filesystem layer behind a large read buffer, so libsndfile's
  small reads become few range requests.
- Bytes (tar members) are read from memory.

Also here: what a WAV header declares (`wav_declared_frames`), to flag files cut short.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pipeline.io.uri import is_file_uri, is_uri, local_path

REMOTE_READ_BUFFER = 4 << 20  # bytes per range request when decoding from an object store
WAV_PROBE_BYTES = 1 << 16  # a WAV's chunks before `data` are looked for in this much of its head
UNKNOWN_DATA_SIZES = (0, 0xFFFFFFFF)  # data sizes streaming writers put in a WAV header they cannot seek back to


class AudioError(ValueError):
    """Audio that cannot be used: missing, not a regular file, unreadable, empty, non-finite, too short or too long."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _not_regular(path: str, mode: int) -> str:
    return f"{path} is {_kind(mode)}, not a regular file; the audio column must name audio files"


def file_problem(path: str) -> str | None:
    """Why the local `path` cannot be read as audio (missing, a FIFO, a device, a directory...), or None.

    Uses ``stat`` only (it does not block on a FIFO); for manifest validation. Decoding checks again
    on the opened descriptor.
    """
    path = local_path(path)
    if is_file_uri(path):
        return f"{path}: a file:// URI with a host is not a local file (use file:///absolute/path)"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"file not found: {path}" + (" (a dangling symlink)" if os.path.islink(path) else "")
    except OSError as exc:
        return f"cannot access {path}: {exc.strerror or exc}"
    return None if stat.S_ISREG(mode) else _not_regular(path, mode)


def open_local(path: str) -> BinaryIO:
    """Open a local regular file for reading, or raise `AudioError` saying what it is instead."""
    path = local_path(path)
    if is_file_uri(path):
        raise AudioError(f"{path}: a file:// URI with a host is not a local file (use file:///absolute/path)")
    problem = file_problem(path)  # stat first: devices are not even opened (opening some has effects)
    if problem is not None:
        raise AudioError(problem if not problem.startswith("file not found") else f"audio {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise AudioError(f"audio file not found: {path}") from exc
    except IsADirectoryError as exc:
        raise AudioError(_not_regular(path, stat.S_IFDIR)) from exc
    except OSError as exc:
        raise AudioError(f"cannot open audio {path}: {exc.strerror or exc}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise AudioError(_not_regular(path, mode))
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


class _RandomAccessRaw(io.RawIOBase):
    """A pyarrow RandomAccessFile as a raw stream, so io.BufferedReader can batch its reads."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()

    def close(self) -> None:
        self._handle.close()
        super().close()


def open_remote(uri: str) -> tuple[BinaryIO, int]:
    """(buffered seekable reader, size in bytes) of an object-store URI; only regular objects."""
    from pyarrow import fs as pafs

    from pipeline.io.storage import arrow_filesystem

    try:
        filesystem, inner = arrow_filesystem(uri)
        info = filesystem.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise AudioError(f"audio file not found: {uri}")
        if info.type != pafs.FileType.File:
            raise AudioError(f"{uri} is a {info.type.name.lower()}, not a file; the audio column must name audio files")
        handle = filesystem.open_input_file(inner)
    except AudioError:
        raise
    except (OSError, ValueError) as exc:
        raise AudioError(f"cannot open audio {uri}: {exc}") from exc
    return io.BufferedReader(_RandomAccessRaw(handle), buffer_size=REMOTE_READ_BUFFER), int(info.size)


@dataclass
class OpenedAudio:
    """A readable, seekable handle on encoded audio: `fd` is set for local files (libsndfile reads it natively)."""

    file: BinaryIO
    size: int
    fd: int | None = None


@contextlib.contextmanager
def open_audio(source: str | bytes) -> Iterator[OpenedAudio]:
    """Open a local path, ``file://`` URI, remote URI or bytes; closes the handle afterwards."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield OpenedAudio(io.BytesIO(source), len(source))
        return
    if is_uri(source):
        handle, size = open_remote(source)
        with handle:
            yield OpenedAudio(handle, size)
        return
    handle = open_local(source)
    with handle:
        yield OpenedAudio(handle, os.fstat(handle.fileno()).st_size, handle.fileno())


def read_all(source: str, max_bytes: int | None = None) -> bytes:
    """The whole content of a local path or URI (regular files only), at most `max_bytes`."""
    with open_audio(source) as opened:
        if max_bytes is not None and opened.size > max_bytes:
            raise AudioError(f"{source} is {opened.size} bytes, over the limit of {max_bytes}")
        return opened.file.read()


def _pread(opened: OpenedAudio, offset: int, size: int) -> bytes:
    if opened.fd is not None:
        return os.pread(opened.fd, size, offset)
    position = opened.file.tell()
    try:
        opened.file.seek(offset)
        return opened.file.read(size)
    finally:
        opened.file.seek(position)


def wav_declared_frames(opened: OpenedAudio) -> int | None:
    """Frames the `data` chunk of a WAV (RIFF, RF64, BW64) header declares, or None.

    None when the file is not a WAV, the header cannot be walked within `WAV_PROBE_BYTES`, or the
    writer could not know the length (a data size of 0 or 0xFFFFFFFF, as streaming writers leave
    it). libsndfile clamps a WAV's frame count to what the file holds, so this is the only way to
    tell a file cut short from a short file.
    """
    head = _pread(opened, 0, WAV_PROBE_BYTES)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    block_align, data_size_64, at = None, None, 12
    while at + 8 <= len(head):
        chunk, size = head[at : at + 4], struct.unpack_from("<I", head, at + 4)[0]
        body = at + 8
        if chunk == b"ds64" and body + 16 <= len(head):
            data_size_64 = struct.unpack_from("<Q", head, body + 8)[0]
        elif chunk == b"fmt " and body + 14 <= len(head):
            block_align = struct.unpack_from("<H", head, body + 12)[0]
        elif chunk == b"data":
            if size == 0xFFFFFFFF and data_size_64 is not None:
                size = data_size_64
            elif size in UNKNOWN_DATA_SIZES:
                return None
            return size // block_align if block_align else None
        at = body + size + (size & 1)
    return None
