"""`.npy` members: numpy arrays as the bytes of a .npy file, and back (what webdataset's decoders read)."""

from __future__ import annotations

import io

import numpy as np


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` serialised as a .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def read_npy(data: bytes) -> np.ndarray:
    """The array of a .npy member (no pickles)."""
    return np.load(io.BytesIO(data), allow_pickle=False)
