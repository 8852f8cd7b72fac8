"""Tests of focusfuse.metadata: EXIF and ICC carried into JPEG, PNG and TIFF outputs.

Every round trip is checked twice: by read_metadata and by an independent reader (Pillow's
``info`` for JPEG and PNG, tifffile's tags for TIFF); and the pixels are decoded before and
after (OpenCV for JPEG and PNG, tifffile for TIFF) to show they did not change.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, JpegImagePlugin, PngImagePlugin, TiffImagePlugin
from PIL.TiffImagePlugin import IFDRational

from focusfuse import metadata as md
from focusfuse.io import read_image, write_image
from focusfuse.metadata import Metadata, read_metadata, write_metadata

SHAPES = {"gray": (12, 20), "colour": (12, 20, 3)}
CASES = [(".jpg", "gray", 8), (".jpg", "colour", 8),
         (".png", "gray", 8), (".png", "colour", 8), (".png", "gray", 16), (".png", "colour", 16),
         (".tif", "gray", 8), (".tif", "colour", 8), (".tif", "gray", 16), (".tif", "colour", 16)]
CASE_IDS = [f"{s[1:]}-{k}-{d}" for s, k, d in CASES]


@pytest.fixture(scope="module")
def icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 6) -> Image.Exif:
    """A camera-like EXIF: IFD0 tags, the EXIF sub-IFD and the GPS sub-IFD."""
    exif = Image.Exif()
    exif[271], exif[272], exif[306] = "Canon", "EOS R5", "2024:05:06 07:08:09"
    exif[274] = orientation
    sub = exif.get_ifd(0x8769)
    sub[33434], sub[33437] = IFDRational(1, 100), IFDRational(28, 10)  # exposure, f-number
    sub[34855], sub[36867] = 400, "2024:05:06 07:08:09"  # ISO, DateTimeOriginal
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(48, 1), IFDRational(51, 1), IFDRational(30, 1))
    return exif


def _decoded(exif: bytes) -> dict:
    """IFD0 and the two sub-IFDs of an EXIF block as plain values, to compare."""
    e = Image.Exif()
    e.load(exif)
    ifd0 = {k: v for k, v in e.items() if k not in (0x8769, 0x8825)}
    return {"ifd0": ifd0, "exif": dict(e.get_ifd(0x8769)), "gps": dict(e.get_ifd(0x8825))}


def _pixels(kind: str, depth: int) -> np.ndarray:
    top = 2**depth - 1
    rng = np.random.default_rng(7)
    return (rng.integers(0, top + 1, size=SHAPES[kind]) / top).astype(np.float32)


def _raw(path) -> np.ndarray:
    """The stored codes, no orientation applied: what must not change."""
    if path.suffix == ".tif":
        return tifffile.imread(path)
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _written(tmp_path, suffix=".png", kind="colour", depth=8, name="out"):
    return write_image(tmp_path / f"{name}{suffix}", _pixels(kind, depth), bit_depth=depth)


# smoke ---------------------------------------------------------------------------------

def test_write_then_read_returns_metadata(tmp_path, icc):
    path = _written(tmp_path)
    write_metadata(path, Metadata(exif=_exif().tobytes(), icc=icc))
    meta = read_metadata(path)
    assert isinstance(meta, Metadata)
    assert meta.exif.startswith(b"Exif\x00\x00") and meta.icc == icc


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_file_without_metadata_gives_none(tmp_path, suffix):
    assert read_metadata(_written(tmp_path, suffix)) == Metadata(None, None)


def test_exif_without_prefix_is_made_canonical():
    block = _exif().tobytes()
    assert Metadata(exif=block[6:]) == Metadata(exif=block)
    assert Metadata(exif=b"", icc=b"") == Metadata(None, None)


# round trips, per format ---------------------------------------------------------------

@pytest.mark.parametrize("suffix,kind,depth", [c for c in CASES if c[0] != ".tif"],
                         ids=[i for i, c in zip(CASE_IDS, CASES) if c[0] != ".tif"])
def test_jpeg_png_round_trip(tmp_path, icc, suffix, kind, depth):
    path = _written(tmp_path, suffix, kind, depth)
    before = _raw(path)
    write_metadata(path, Metadata(exif=_exif(6).tobytes(), icc=icc))

    upright = _exif(1).tobytes()  # the same block, Orientation 1: every other byte equal
    assert read_metadata(path) == Metadata(exif=upright, icc=icc)
    plugin = JpegImagePlugin.JpegImageFile if suffix == ".jpg" else PngImagePlugin.PngImageFile
    with plugin(path) as im:  # Pillow, independently
        assert im.info["exif"] == upright and im.info["icc_profile"] == icc
        assert im.getexif()[274] == 1
    after = _raw(path)
    assert after.dtype == np.dtype(f"uint{depth}") and np.array_equal(after, before)


@pytest.mark.parametrize("suffix,kind,depth", [c for c in CASES if c[0] == ".tif"],
                         ids=[i for i, c in zip(CASE_IDS, CASES) if c[0] == ".tif"])
def test_tiff_round_trip(tmp_path, icc, suffix, kind, depth):
    path = _written(tmp_path, suffix, kind, depth)
    before = _raw(path)
    with tifffile.TiffFile(path) as tif:
        description = tif.pages[0].description  # '{"shape": ...}', by tifffile
    write_metadata(path, Metadata(exif=_exif(6).tobytes(), icc=icc))

    meta = read_metadata(path)
    assert meta.icc == icc and _decoded(meta.exif) == _decoded(_exif(1).tobytes())
    with tifffile.TiffFile(path) as tif:  # tifffile, independently
        page = tif.pages[0]
        assert page.iccprofile == icc
        assert page.tags["Make"].value == "Canon" and page.tags["Model"].value == "EOS R5"
        assert page.tags["DateTime"].value == "2024:05:06 07:08:09"
        assert page.tags["Orientation"].value == 1
        sub = page.tags["ExifTag"].value
        assert sub["ExposureTime"] == (1, 100) and sub["FNumber"] == (14, 5)
        assert sub["ISOSpeedRatings"] == 400
        assert page.tags["GPSTag"].value["GPSLatitudeRef"] == "N"
        assert page.bitspersample == depth and page.description == description
    with TiffImagePlugin.TiffImageFile(path) as im:  # and Pillow
        exif = im.getexif()
        assert im.info["icc_profile"] == icc and exif[271] == "Canon" and exif[274] == 1
        assert exif.get_ifd(0x8769)[33434] == IFDRational(1, 100)
    after = _raw(path)
    assert after.dtype == np.dtype(f"uint{depth}") and np.array_equal(after, before)


@pytest.mark.parametrize("layout", [
    dict(byteorder=">", photometric="rgb"),
    dict(tile=(16, 16), compression="zlib", predictor=True, photometric="rgb"),
    dict(planarconfig="separate", photometric="rgb"),
    dict(bigtiff=True, resolution=(300, 300), resolutionunit="inch", photometric="rgb"),
], ids=["big-endian", "tiled-deflate", "planar", "bigtiff"])
def test_tiff_layout_and_other_tags_are_kept(tmp_path, icc, layout):
    shape = (3, 32, 48) if layout.get("planarconfig") else (32, 48, 3)
    pixels = np.random.default_rng(1).integers(0, 65536, shape, dtype=np.uint16)
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, pixels, **layout)

    def tags():
        with tifffile.TiffFile(path) as tif:
            moved = {273, 279, 324, 325}  # strip and tile offsets and sizes
            return tif.byteorder, tif.is_bigtiff, {
                code: tag.value for code, tag in tif.pages[0].tags.items() if code not in moved}

    order, big, before = tags()
    write_metadata(path, Metadata(exif=_exif(6).tobytes(), icc=icc))
    order_after, big_after, after = tags()
    assert (order_after, big_after) == (order, big)
    assert {k: v for k, v in after.items() if k in before} == before
    assert np.array_equal(tifffile.imread(path), pixels)
    assert read_metadata(path).icc == icc


def test_tiff_keeps_each_exif_tag_type(tmp_path):
    # a block made by hand (TIFF 6.0 layout): IFD0 at 8 with the EXIF pointer; the EXIF IFD
    # at 26 with ShutterSpeedValue as SRATIONAL 20/3 (Pillow would guess RATIONAL for a
    # positive value) at 56, and a 4-byte MakerNote as UNDEFINED (Pillow would guess BYTE)
    block = (b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8)
             + struct.pack("<H", 1) + struct.pack("<HHII", 34665, 4, 1, 26) + struct.pack("<I", 0)
             + struct.pack("<H", 2) + struct.pack("<HHII", 37377, 10, 1, 56)
             + struct.pack("<HHI", 37500, 7, 4) + b"MNOT" + struct.pack("<I", 0)
             + struct.pack("<ii", 20, 3))
    path = _written(tmp_path, ".tif", depth=16)
    write_metadata(path, Metadata(exif=block))
    with tifffile.TiffFile(path) as tif:
        sub = tif.pages[0].tags["ExifTag"].value
        assert sub["ShutterSpeedValue"] == (20, 3) and sub["MakerNote"] == b"MNOT"
    assert read_metadata(path).exif == block  # laid out again the same way, byte for byte


def test_large_icc_is_split_over_numbered_app2_segments(tmp_path, icc):
    rng = np.random.default_rng(3)
    big = bytearray(rng.integers(0, 256, 150_000, dtype=np.uint8).tobytes())
    big[:128] = icc[:128]  # a valid header (the size field does not matter here)
    big = bytes(big)
    path = _written(tmp_path, ".jpg")
    before = _raw(path)
    write_metadata(path, Metadata(icc=big))

    data = path.read_bytes()
    heads = [data[i + 4:i + 18] for i in range(len(data) - 18)
             if data[i:i + 2] == b"\xff\xe2" and data[i + 4:i + 16] == b"ICC_PROFILE\x00"]
    assert [(h[12], h[13]) for h in heads] == [(1, 3), (2, 3), (3, 3)]  # 65519 bytes each
    assert read_metadata(path) == Metadata(icc=big)
    with JpegImagePlugin.JpegImageFile(path) as im:
        assert im.info["icc_profile"] == big
    assert np.array_equal(_raw(path), before)


def test_metadata_travels_jpeg_to_tiff16_to_png16(tmp_path, icc):
    source = _written(tmp_path, ".jpg", name="frame")
    write_metadata(source, Metadata(exif=_exif(1).tobytes(), icc=icc))
    tiff = _written(tmp_path, ".tif", depth=16)
    write_metadata(tiff, read_metadata(source))
    png = _written(tmp_path, ".png", depth=16)
    write_metadata(png, read_metadata(tiff))
    expected = _decoded(_exif(1).tobytes())
    for path in (tiff, png):
        meta = read_metadata(path)
        assert meta.icc == icc and _decoded(meta.exif) == expected


# orientation ---------------------------------------------------------------------------

def test_orientation_written_as_one_keeps_read_image_upright(tmp_path):
    path = _written(tmp_path, ".jpg")
    before = read_image(path)
    write_metadata(path, Metadata(exif=_exif(6).tobytes()))
    assert read_image(path).shape == before.shape == SHAPES["colour"]


def test_orientation_none_keeps_the_source_value(tmp_path):
    path = _written(tmp_path, ".jpg")
    write_metadata(path, Metadata(exif=_exif(6).tobytes()), orientation=None)
    assert read_metadata(path).exif == _exif(6).tobytes()
    assert read_image(path).shape == (20, 12, 3)  # what orientation 1 is for: no turn


# replacing and keeping -----------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_writing_again_replaces_the_metadata(tmp_path, icc, suffix):
    path = _written(tmp_path, suffix)
    write_metadata(path, Metadata(exif=_exif().tobytes(), icc=icc))
    write_metadata(path, Metadata(icc=icc))
    assert read_metadata(path) == Metadata(icc=icc)
    write_metadata(path, Metadata())
    assert read_metadata(path) == Metadata(None, None)
    if suffix == ".png":
        assert path.read_bytes().count(b"iCCP") == 0


def test_png_old_style_exif_text_is_read_and_replaced(tmp_path):
    block = _exif(1).tobytes()
    text = f"\nexif\n{len(block):8d}\n" + block.hex()
    info = PngImagePlugin.PngInfo()
    info.add_text("Raw profile type exif", text, zip=True)
    path = tmp_path / "old.png"
    Image.new("RGB", (4, 3)).save(path, pnginfo=info)
    assert read_metadata(path).exif == block
    write_metadata(path, Metadata())
    assert read_metadata(path) == Metadata(None, None)


def test_file_mode_is_kept(tmp_path, icc):
    path = _written(tmp_path, ".png")
    path.chmod(0o640)
    write_metadata(path, Metadata(icc=icc))
    assert path.stat().st_mode & 0o7777 == 0o640


# headers only --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_read_does_not_decode_pixels(tmp_path, icc, suffix):
    path = _written(tmp_path, suffix, kind="gray")
    write_metadata(path, Metadata(exif=_exif(1).tobytes(), icc=icc))
    expected = read_metadata(path)
    data = path.read_bytes()
    if suffix == ".tif":  # the strip of pixels made to point past the end of the file
        with tifffile.TiffFile(path) as tif:
            at = tif.pages[0].tags["StripOffsets"].valueoffset
        data = data[:at] + struct.pack("<I", 10**8) + data[at + 4:]
    else:  # the image data zeroed from its eighth byte on: a decoder would fail
        start = data.index(b"\xff\xda") if suffix == ".jpg" else data.index(b"IDAT")
        data = data[:start + 8] + bytes(len(data) - start - 8)
    path.write_bytes(data)
    assert read_metadata(path) == expected


def test_damaged_metadata_gives_none(tmp_path):
    path = _written(tmp_path, ".png")
    data = path.read_bytes()
    bad = b"junk\x00\x00not zlib"  # an iCCP chunk whose profile does not inflate
    crc = zlib.crc32(b"iCCP" + bad)
    chunk = struct.pack(">I", len(bad)) + b"iCCP" + bad + struct.pack(">I", crc)
    path.write_bytes(data[:33] + chunk + data[33:])  # after the 25-byte IHDR chunk
    assert read_metadata(path) == Metadata(None, None)


# errors and atomicity ------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_failed_write_leaves_the_file_and_no_temporary(tmp_path, icc, suffix, monkeypatch):
    path = _written(tmp_path, suffix)
    before = path.read_bytes()

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(md.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_metadata(path, Metadata(exif=_exif().tobytes(), icc=icc))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_exif_too_large_for_jpeg_raises_and_keeps_the_file(tmp_path):
    path = _written(tmp_path, ".jpg")
    before = path.read_bytes()
    exif = _exif()
    exif.get_ifd(0x8769)[37500] = bytes(70_000)  # a huge MakerNote
    with pytest.raises(ValueError, match="APP1 segment holds at most 65533"):
        write_metadata(path, Metadata(exif=exif.tobytes()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_tiff_that_cannot_be_rewritten_raises_and_keeps_the_file(tmp_path):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((2, 8, 8), np.uint8), metadata=None)  # two pages
    before = path.read_bytes()
    with pytest.raises(ValueError, match="has 2 images"):
        write_metadata(path, Metadata())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_not_an_image_raises(tmp_path):
    path = tmp_path / "notes.png"
    path.write_bytes(b"plain text, not a picture\n")
    with pytest.raises(ValueError, match="not a JPEG, PNG or TIFF"):
        read_metadata(path)
    with pytest.raises(ValueError, match="not a JPEG, PNG or TIFF"):
        write_metadata(path, Metadata())
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.jpg")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"exif": b"not exif at all"}, ValueError, "exif must start with"),
    ({"icc": b"too short"}, ValueError, "icc must be an ICC profile"),
    ({"exif": "Exif"}, TypeError, "exif must be bytes"),
])
def test_bad_metadata_values_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        Metadata(**kwargs)


def test_bad_write_arguments_raise(tmp_path):
    path = _written(tmp_path, ".jpg")
    with pytest.raises(TypeError, match="metadata must be a Metadata"):
        write_metadata(path, {"exif": None})
    for orientation in (9, 1.0, True):
        with pytest.raises(ValueError, match="orientation must be 1 to 8"):
            write_metadata(path, Metadata(), orientation=orientation)
