"""Image files and layers as (C, H, W): alpha is transparency, not a channel; no silent loss."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_cellcurator.core.errors import InputError
from napari_cellcurator.core.io.images import read_image_chw
from napari_cellcurator.core.io.points import as_chw

RNG = np.random.default_rng(0)


def test_alpha_of_a_tiff_is_dropped_like_a_pngs(tmp_path):
    rgba = RNG.integers(0, 255, (20, 24, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb")  # extrasamples: alpha
    png, tif = read_image_chw(tmp_path / "a.png"), read_image_chw(tmp_path / "a.tif")
    assert png.shape == tif.shape == (3, 20, 24)
    np.testing.assert_array_equal(png, tif)
    grey_alpha = RNG.integers(0, 255, (20, 24, 2), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "la.tif", grey_alpha, photometric="minisblack",
                     extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image_chw(tmp_path / "la.tif"), grey_alpha[None, ..., 0])


def test_extra_measurement_channels_of_a_tiff_are_kept(tmp_path):
    """Unspecified extra samples are data (a 4-channel stain), only alpha is dropped."""
    four = RNG.integers(0, 4000, (4, 20, 24), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", four, photometric="minisblack")
    assert read_image_chw(tmp_path / "c.tif").shape == (4, 20, 24)


def test_a_16_bit_colour_png_is_refused_not_cut_to_8_bits(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = b"".join(b"\x00" + np.full((3, 3), 40000, ">u2").tobytes() for _ in range(2))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 16, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    (tmp_path / "deep.png").write_bytes(png)
    with pytest.raises(InputError, match="deep.png.*16-bit colour PNG"):
        read_image_chw(tmp_path / "deep.png")
    grey16 = RNG.integers(0, 60000, (8, 9), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    np.testing.assert_array_equal(read_image_chw(tmp_path / "grey16.png")[0], grey16)


def test_a_tiny_rgb_png_keeps_its_channels_last(tmp_path):
    tiny = RNG.integers(0, 255, (3, 4, 3), dtype=np.uint8)  # 3 rows: as short as the channels
    Image.fromarray(tiny, "RGB").save(tmp_path / "tiny.png")
    np.testing.assert_array_equal(read_image_chw(tmp_path / "tiny.png"),
                                  np.moveaxis(tiny, -1, 0))


def test_an_rgba_napari_layer_gives_colour_crops():
    rgba = RNG.integers(0, 255, (50, 60, 4), dtype=np.uint8)
    np.testing.assert_array_equal(as_chw(rgba), np.moveaxis(rgba[..., :3], -1, 0))
    assert as_chw(rgba[..., :3]).shape == (3, 50, 60)
