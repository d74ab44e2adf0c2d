"""Read rows of a feature cache without loading it: training memory follows the batch, not the dataset.

`np.load` of an NPZ reads a whole member; a memory map keeps every page it touched in the process's
resident set, so an epoch over a memory-mapped cache ends with the whole file counted in RSS.
`NpzRows` instead finds where an uncompressed member's data start and copies just the rows asked
for with positional reads (`os.preadv`), so the operating system's page cache, not the process,
holds the file.
"""
from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path

import numpy as np

_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes
CHUNK_ROWS = 256


class NpzRows:
    """Row access to one uncompressed member of an NPZ: len, shape, dtype, and indexing by an int,
    a slice or an integer array; `np.asarray(store)` loads it all."""

    def __init__(self, path: str | Path, member: str = "x"):
        self.path = Path(path)
        try:
            zf = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile:
            raise ValueError(f"{self.path}: not a complete NPZ file (damaged or truncated); "
                             "rebuild the feature cache (rule features)") from None
        with zf:
            try:
                info = zf.getinfo(f"{member}.npy")
            except KeyError:
                raise KeyError(f"{self.path}: no array {member!r} (has {sorted(zf.namelist())})") from None
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{self.path}: array {member!r} is compressed; rows can only be read from "
                                 "an uncompressed NPZ (np.savez, not np.savez_compressed)")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, fortran, dtype = read_header(f)
                npy_header = f.tell()
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if fortran or dtype.hasobject or fields[0] != b"PK\x03\x04":
            raise ValueError(f"{self.path}: array {member!r} is not a plain C-ordered numeric array")
        name_len, extra_len = fields[-2:]
        self.offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + npy_header
        self.shape, self.dtype = tuple(shape), dtype
        self.row_shape = self.shape[1:]
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * dtype.itemsize
        self._fd = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"NpzRows({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"

    def _file(self) -> int:
        if self._fd is None:  # opened lazily, so a store can be pickled to a worker before use
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def __getstate__(self):
        return {**self.__dict__, "_fd": None}

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __getitem__(self, index) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step == 1:  # one contiguous read
                out = np.empty((max(stop - start, 0), *self.row_shape), self.dtype)
                self._read(out, start)
                return out
            index = np.arange(start, stop, step)
        if np.ndim(index) == 0:
            return self[np.asarray([index])][0]
        rows = np.asarray(index)
        if rows.dtype.kind not in "iu":
            raise IndexError(f"{self.path}: rows are indexed by integers or a slice, got {rows.dtype}")
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError(f"{self.path}: row index out of range for {n} rows")
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        for i, row in enumerate(rows):
            self._read(out[i:i + 1], int(row))
        return out

    def _read(self, out: np.ndarray, first_row: int) -> None:
        view = memoryview(out.reshape(-1).view(np.uint8))
        done, offset = 0, self.offset + first_row * self.row_bytes
        while done < len(view):
            got = os.preadv(self._file(), [view[done:]], offset + done)
            if got == 0:
                raise EOFError(f"{self.path}: file ends before row {first_row + done // self.row_bytes}; "
                               "the feature cache is truncated, rebuild it (rule features)")
            done += got

    def __array__(self, dtype=None, copy=None):
        full = self[:]
        return full if dtype is None else full.astype(dtype, copy=False)


def chunks(x, rows: int = CHUNK_ROWS):
    """Consecutive blocks of rows of an array or an NpzRows, for passes that must not load it all."""
    for start in range(0, len(x), rows):
        yield x[start:start + rows]
