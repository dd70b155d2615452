"""Decoded tile pixels kept in memory, so a server answers each farmer without re-reading the file.

A claim's window is a few hundred pixels across, yet every read decompresses the whole
internal blocks under it, on every date of the season: ~25 ms a date, most of a submission's
time. The cache holds raw pixels in fixed 256 px chunks of the tile grid, keyed by the file's
identity (path, size, modification time: a re-delivered file is never served stale) and the
bands read, least recently used dropped beyond a byte budget. Thread-safe: API requests share it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

import numpy as np
from rasterio.windows import Window

CHUNK_PX = 256


class BlockCache:
    """Raw pixels of tile windows, assembled from cached ``CHUNK_PX`` chunks."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def read(self, key: tuple, shape: tuple[int, int], window: Window,
             read_chunk: Callable[[Window], np.ndarray]) -> np.ndarray | None:
        """Pixels (bands, h, w) of an integer ``window`` inside a raster of ``shape`` (rows, cols),
        or None when the window is not whole pixels inside the raster (the caller reads directly).
        ``read_chunk`` reads one chunk window from the file."""
        col0, row0, width, height = window.col_off, window.row_off, window.width, window.height
        if not all(float(v).is_integer() for v in (col0, row0, width, height)) or width <= 0 or height <= 0:
            return None
        col0, row0, width, height = int(col0), int(row0), int(width), int(height)
        rows, cols = shape
        if col0 < 0 or row0 < 0 or col0 + width > cols or row0 + height > rows or self.max_bytes <= 0:
            return None
        out: np.ndarray | None = None
        for cr in range(row0 // CHUNK_PX, (row0 + height - 1) // CHUNK_PX + 1):
            for cc in range(col0 // CHUNK_PX, (col0 + width - 1) // CHUNK_PX + 1):
                chunk = self._chunk((*key, cr, cc), shape, cr, cc, read_chunk)
                r0, c0 = cr * CHUNK_PX, cc * CHUNK_PX
                rs, re_ = max(row0, r0), min(row0 + height, r0 + chunk.shape[1])
                cs, ce = max(col0, c0), min(col0 + width, c0 + chunk.shape[2])
                if out is None:
                    out = np.empty((chunk.shape[0], height, width), chunk.dtype)
                out[:, rs - row0:re_ - row0, cs - col0:ce - col0] = chunk[:, rs - r0:re_ - r0, cs - c0:ce - c0]
        return out

    def _chunk(self, key: tuple, shape: tuple[int, int], cr: int, cc: int,
               read_chunk: Callable[[Window], np.ndarray]) -> np.ndarray:
        with self._lock:
            chunk = self._chunks.get(key)
            if chunk is not None:
                self._chunks.move_to_end(key)
                self.hits += 1
                return chunk
            self.misses += 1
        r0, c0 = cr * CHUNK_PX, cc * CHUNK_PX
        chunk = read_chunk(Window(c0, r0, min(CHUNK_PX, shape[1] - c0), min(CHUNK_PX, shape[0] - r0)))
        chunk.setflags(write=False)  # shared between requests
        with self._lock:
            if key not in self._chunks:
                self._chunks[key] = chunk
                self._bytes += chunk.nbytes
                while self._bytes > self.max_bytes and self._chunks:
                    _, dropped = self._chunks.popitem(last=False)
                    self._bytes -= dropped.nbytes
        return chunk


_shared: BlockCache | None = None
_shared_lock = threading.Lock()


def shared_cache(max_bytes: int) -> BlockCache:
    """The process's cache (one per server or flow worker), created with ``max_bytes`` on first use."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.max_bytes != max_bytes:
            _shared = BlockCache(max_bytes)
        return _shared
