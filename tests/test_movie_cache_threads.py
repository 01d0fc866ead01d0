"""Dask's threads share one movie's frame cache: evictions by one thread must not break
another's read (KeyError before the cache had a lock)."""

from __future__ import annotations

import sys
import threading

import numpy as np
import tifffile

from napari_cellcurator.core.io.movies import open_movie


def test_threads_reading_one_compressed_movie_through_a_tiny_cache(tmp_path):
    movie = np.random.default_rng(0).random((40, 32, 32)).astype(np.float32)
    tifffile.imwrite(tmp_path / "m.tif", movie, compression="zlib")
    mv = open_movie(tmp_path / "m.tif")
    assert mv._cache is not None
    mv._cache_frames = 3  # constant eviction
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(1500):
            t0 = int(rng.integers(0, 36))
            try:
                got = mv.read(t0, t0 + 5, 0, 16, 0, 16)
            except Exception as exc:  # noqa: BLE001 (any failure is the finding)
                errors.append(repr(exc))
                return
            if not np.array_equal(got, movie[t0:t0 + 5, :16, :16]):
                errors.append(f"wrong frames at t0={t0}")
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, as a loaded machine does
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors[:3]
