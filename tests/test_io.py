"""Tests of focusfuse.io: round trips at each file type and depth, bad files, safe writes."""

from __future__ import annotations

import numpy as np
import pytest

from focusfuse.io import Image, ImageReadError, read_image, write_image


def _levels(shape, depth: int, seed: int = 0) -> np.ndarray:
    """Random pixels that lie exactly on the levels of a ``depth``-bit file, as float32."""
    top = 2**depth - 1
    rng = np.random.default_rng(seed)
    return (rng.integers(0, top + 1, size=shape) / top).astype(np.float32)


SHAPES = {"gray": (13, 17), "colour": (13, 17, 3)}


# smoke ---------------------------------------------------------------------------------

def test_write_then_read_returns_float32(tmp_path):
    path = write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert path == tmp_path / "x.png"
    out = read_image(path)
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0


# shapes --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gray", "colour"])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_read_keeps_shape(tmp_path, kind, suffix):
    write_image(tmp_path / f"x{suffix}", _levels(SHAPES[kind], 8))
    assert read_image(tmp_path / f"x{suffix}").shape == SHAPES[kind]


def test_with_depth_returns_image(tmp_path):
    path = write_image(tmp_path / "x.png", _levels((8, 8), 8))
    im = read_image(path, with_depth=True)
    assert isinstance(im, Image)
    assert im.bit_depth == 8 and im.path == path and im.pixels.shape == (8, 8)


# errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,content", [("notes.png", b"this is not an image\n"),
                                          ("empty.jpg", b""),
                                          ("fake.tif", b"II*\x00garbage")])
def test_non_image_raises_read_error_naming_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=name):
        read_image(path)
    assert issubclass(ImageReadError, ValueError)


def test_missing_file_raises_read_error(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_write_to_missing_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        write_image(tmp_path / "nope" / "x.png", _levels((8, 8), 8))
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("kwargs,match", [({"bit_depth": 12}, "bit_depth"),
                                          ({"bit_depth": 16}, "JPEG")])
def test_write_bad_depth_raises(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_image(tmp_path / "x.jpg", _levels((8, 8), 8), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_write_unknown_suffix_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown image type"):
        write_image(tmp_path / "x.bmpx", _levels((8, 8), 8))
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    # the encoder fails after the temporary file was created: it must be cleaned up
    import focusfuse.io as fio

    monkeypatch.setattr(fio.cv2, "imencode", lambda *a, **k: (False, None))
    with pytest.raises(ValueError, match="could not encode"):
        write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "hidden-name"])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_interrupted_write_leaves_no_file_and_keeps_old_one(tmp_path, monkeypatch, suffix,
                                                             unnamed):
    # an interrupt (Ctrl-C, or SIGTERM through the command's handler) while the bytes are
    # written: the old file stays as it was, no new file, and no temporary file
    import focusfuse.io as fio

    if not unnamed:
        monkeypatch.setattr(fio, "_UNNAMED", False)
    path = write_image(tmp_path / f"x{suffix}", _levels((8, 8), 8))
    before = path.read_bytes()

    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(fio, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(path, _levels((8, 8), 8, seed=1))
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / f"new{suffix}", _levels((8, 8), 8, seed=1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x{suffix}"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_interrupt_at_the_rename_keeps_the_old_file(tmp_path, monkeypatch, suffix):
    import focusfuse.io as fio

    path = write_image(tmp_path / f"x{suffix}", _levels((8, 8), 8))
    before = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(fio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(path, _levels((8, 8), 8, seed=1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x{suffix}"]


def test_a_new_file_has_no_other_name_while_it_is_written(tmp_path, monkeypatch):
    # with O_TMPFILE the bytes go to a file without a name, linked in one step: a SIGKILL at
    # any moment leaves nothing in the folder (tests/test_robustness.py kills a real one)
    import os

    import focusfuse.io as fio

    if not hasattr(os, "O_TMPFILE"):
        pytest.skip("no O_TMPFILE on this system")
    seen = []
    real = fio._write_all

    def watch(fd, data):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real(fd, data)

    monkeypatch.setattr(fio, "_write_all", watch)
    write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert seen == [[]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path):
    import os
    import time

    dead = tmp_path / ".focusfuse-4194305-deadbeef.tmp"  # above Linux's largest process id
    alive = tmp_path / f".focusfuse-{os.getppid()}-0badf00d.tmp"  # a running process's
    old = tmp_path / ".focusfuse-abcd1234.png"  # focusfuse 0.1's name, two hours old
    mine = tmp_path / ".focusfuse-notes.txt"  # not a temporary's name: the user's
    for p in (dead, alive, old, mine):
        p.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, mine.name, "x.png"])


def test_the_written_file_has_the_usual_mode(tmp_path):
    import focusfuse.io as fio

    path = write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert path.stat().st_mode & 0o777 == fio.NEW_FILE_MODE


def test_write_refuses_nan_and_writes_nothing(tmp_path):
    x = _levels((8, 8), 8)
    x[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_image(tmp_path / "x.png", x)
    x[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        write_image(tmp_path / "x.tif", x)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_refused_before_anything_is_encoded(tmp_path, monkeypatch):
    import focusfuse.checks as fchecks
    import focusfuse.io as fio

    monkeypatch.setattr(fchecks, "_writable", lambda folder: False)
    monkeypatch.setattr(fio, "_encode", lambda *a: pytest.fail("encoded"))
    with pytest.raises(ValueError, match=r"output folder .* is not writable"):
        write_image(tmp_path / "x.png", _levels((8, 8), 8))


def test_a_failed_write_names_the_output_not_a_temporary(tmp_path, monkeypatch):
    import errno

    import focusfuse.io as fio

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fio, "_write_all", full)
    with pytest.raises(OSError, match=r"^output .*x\.png: could not be written \(No space") as exc:
        write_image(tmp_path / "x.png", _levels((8, 8), 8))
    assert ".focusfuse-" not in str(exc.value) and exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_bad_channel_count_raises_and_writes_nothing(tmp_path, channels):
    with pytest.raises(ValueError, match="colour"):
        write_image(tmp_path / "x.png", np.zeros((8, 8, channels), np.float32))
    with pytest.raises(ValueError, match="colour"):
        write_image(tmp_path / "x.tif", np.zeros((8, 8, channels), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_wrong_ndim_raises(tmp_path):
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        write_image(tmp_path / "x.png", np.zeros((2, 8, 8, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


# invariants: lossless round trips --------------------------------------------------------

@pytest.mark.parametrize("kind", ["gray", "colour"])
@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff"])
def test_lossless_round_trip_exact(tmp_path, kind, depth, suffix):
    x = _levels(SHAPES[kind], depth, seed=depth)
    path = write_image(tmp_path / f"x{suffix}", x, bit_depth=depth)
    im = read_image(path, with_depth=True)
    assert im.bit_depth == depth
    # exact at the file's quantisation: the integer codes come back unchanged
    top = 2**depth - 1
    np.testing.assert_array_equal(np.round(im.pixels.astype(np.float64) * top),
                                  np.round(x.astype(np.float64) * top))
    np.testing.assert_allclose(im.pixels, x, atol=1e-7)


@pytest.mark.parametrize("kind", ["gray", "colour"])
def test_jpeg_round_trip_is_close(tmp_path, kind):
    # a smooth image survives JPEG at quality 95 within a few levels
    yy, xx = np.mgrid[0:32, 0:40] / 40.0
    x = 0.2 + 0.6 * (0.5 * yy + 0.5 * xx)
    if kind == "colour":
        x = np.stack([x, 1 - x, 0.5 + 0 * x], axis=2)
    im = read_image(write_image(tmp_path / "x.jpg", x), with_depth=True)
    assert im.bit_depth == 8
    assert np.abs(im.pixels - x).mean() < 2 / 255
    assert np.abs(im.pixels - x).max() < 8 / 255


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgba_round_trip_keeps_alpha(tmp_path, suffix):
    x = _levels((6, 7, 4), 8, seed=3)
    out = read_image(write_image(tmp_path / f"x{suffix}", x))
    assert out.shape == (6, 7, 4)
    np.testing.assert_allclose(out, x, atol=1e-7)


def test_colour_channel_order_is_rgb(tmp_path):
    x = np.zeros((4, 4, 3), np.float32)
    x[..., 0] = 1.0  # pure red
    for suffix in (".png", ".tif"):
        out = read_image(write_image(tmp_path / f"r{suffix}", x))
        np.testing.assert_array_equal(out[0, 0], [1.0, 0.0, 0.0])


def test_values_are_clipped_and_rounded(tmp_path):
    x = np.array([[-0.5, 1.5, 0.5 / 255, 0.49 / 255]], np.float32)
    out = read_image(write_image(tmp_path / "x.png", x))
    # floor(x·255 + 0.5) after clipping: 0, 255, 1 (0.5 rounds up), 0
    np.testing.assert_array_equal(np.round(out * 255), [[0, 255, 1, 0]])


def test_16bit_colour_png_stays_16bit(tmp_path):
    # a ramp of 16-bit codes that are not multiples of 257: they cannot come from an 8-bit file
    codes = np.arange(3 * 16 * 16, dtype=np.int64).reshape(16, 16, 3) * 41 + 3
    x = (codes / 65535).astype(np.float32)
    im = read_image(write_image(tmp_path / "x.png", x, bit_depth=16), with_depth=True)
    assert im.bit_depth == 16
    assert im.pixels.shape == (16, 16, 3)
    got = np.round(im.pixels.astype(np.float64) * 65535).astype(np.int64)
    np.testing.assert_array_equal(got, codes)
    # not quantised to 8 bit: most values lie off the 257-spaced 8-bit grid
    assert np.mean(got % 257 != 0) > 0.9


def test_write_does_not_leave_temporary_files(tmp_path):
    for suffix in (".png", ".tif", ".jpg"):
        write_image(tmp_path / f"x{suffix}", _levels((8, 8, 3), 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jpg", "x.png", "x.tif"]


@pytest.mark.parametrize("bit_depth,top,dtype", [(8, 255, np.uint8), (16, 65535, np.uint16)])
def test_quantize_rounds_to_the_nearest_level(bit_depth, top, dtype):
    from focusfuse.io import quantize

    x = (np.random.default_rng(11).random((300, 7, 3)) * 1.2 - 0.1).astype(np.float32)
    want = np.floor(np.clip(x.astype(np.float64), 0, 1) * top + 0.5).astype(dtype)
    got = quantize(x, bit_depth)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(quantize(x[:, :, 0], bit_depth), want[:, :, 0])


# hostile and damaged files --------------------------------------------------------------

def _png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` × ``height`` gray pixels (no real data)."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def _jpeg_claiming(tmp_path, width: int, height: int) -> bytes:
    import struct

    data = bytearray(write_image(tmp_path / "seed.jpg", _levels((16, 16, 3), 8)).read_bytes())
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, height, width)
    return bytes(data)


def _tiff_claiming(tmp_path, width: int, height: int) -> bytes:
    """A small TIFF whose ImageWidth and ImageLength tags are rewritten (classic TIFF)."""
    import struct

    data = bytearray(write_image(tmp_path / "seed.tif", _levels((16, 16), 8)).read_bytes())
    bo = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(bo + "I", data[4:8])[0]
    for k in range(struct.unpack(bo + "H", data[ifd:ifd + 2])[0]):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack(bo + "HH", data[e:e + 4])
        if tag in (256, 257):
            struct.pack_into(bo + ("H" if typ == 3 else "I"), data, e + 8,
                             width if tag == 256 else height)
    return bytes(data)


@pytest.mark.parametrize("kind", ["png", "jpg", "tif"])
def test_decompression_bomb_is_refused_from_its_header(tmp_path, kind):
    # a file of a few KB claiming 30000×30000 (PNG, TIFF) or 40000×13348 (JPEG's 16 bits):
    # refused at once, before any decoding (before: 8 GB in 18 s, MemoryError or cv2.error)
    import time

    w, h = (40000, 13348) if kind == "jpg" else (30000, 30000)
    data = (_png_claiming(w, h) if kind == "png" else _jpeg_claiming(tmp_path, w, h)
            if kind == "jpg" else _tiff_claiming(tmp_path, w, h))
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(data)
    t = time.perf_counter()
    with pytest.raises(ImageReadError, match=rf"bomb.{kind}: the file says {w}×{h} pixels") as exc:
        read_image(path)
    assert time.perf_counter() - t < 1.0
    assert "raise max_pixels" in str(exc.value) and exc.value.option == "max_pixels"


def test_max_pixels_is_the_limit(tmp_path):
    from focusfuse.checks import MAX_PIXELS

    assert MAX_PIXELS == 2**28
    path = write_image(tmp_path / "x.png", _levels((12, 10), 8))
    assert read_image(path, max_pixels=120).shape == (12, 10)
    with pytest.raises(ImageReadError, match="10×12 pixels"):
        read_image(path, max_pixels=119)
    with pytest.raises(ValueError, match="max_pixels must be an integer >= 1"):
        read_image(path, max_pixels=0)


@pytest.mark.parametrize("error", [MemoryError, "cv2.error"])
def test_out_of_memory_while_decoding_is_a_read_error(tmp_path, monkeypatch, error):
    import cv2

    import focusfuse.io as fio

    path = write_image(tmp_path / "x.png", _levels((8, 8), 8))

    def fail(*args):
        if error is MemoryError:
            raise MemoryError
        raise cv2.error("OpenCV(5.0.0) loadsave.cpp: error: (-4:Insufficient memory) "
                        "Failed to allocate 4000000000 bytes")

    monkeypatch.setattr(fio.cv2, "imdecode", fail)
    with pytest.raises(ImageReadError, match="x.png: (not enough memory|not a readable PNG)"):
        read_image(path)


def test_out_of_memory_while_decoding_a_tiff_is_a_read_error(tmp_path, monkeypatch):
    import tifffile

    path = write_image(tmp_path / "x.tif", _levels((8, 8), 8))

    def fail(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tifffile.TiffPage, "asarray", fail)
    with pytest.raises(ImageReadError, match="x.tif: not enough memory"):
        read_image(path)


@pytest.mark.parametrize("pages,shape", [(3, (16, 16)), (2, (16, 16)), (3, (16, 16, 3))])
def test_multi_page_tiff_is_refused_not_read_as_channels(tmp_path, pages, shape):
    # before: 3 gray pages came back as one RGB image without a word
    import tifffile

    stack = (np.random.default_rng(0).random((pages, *shape)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack,
                     photometric="rgb" if len(shape) == 3 else "minisblack")
    with pytest.raises(ImageReadError, match=rf"stack.tif: a multi-page TIFF \({pages} pages\); "
                                             "split it into one file per frame"):
        read_image(tmp_path / "stack.tif")


def test_tiff_with_a_preview_page_reads_the_image(tmp_path):
    import tifffile

    x = _levels((16, 20), 8)
    codes = np.round(x * 255).astype(np.uint8)
    with tifffile.TiffWriter(tmp_path / "x.tif") as tif:
        tif.write(codes, photometric="minisblack")
        tif.write(codes[::2, ::2], photometric="minisblack", subfiletype=1)  # reduced
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), x)


def test_planar_colour_tiff_is_read_channel_last(tmp_path):
    import tifffile

    codes = (np.random.default_rng(1).random((3, 8, 9)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", codes, photometric="rgb", planarconfig="separate")
    out = read_image(tmp_path / "p.tif")
    assert out.shape == (8, 9, 3)
    np.testing.assert_array_equal(np.round(out * 255), np.moveaxis(codes, 0, -1))


def test_a_file_is_read_as_what_it_is_not_by_its_name(tmp_path):
    # before: an RGBA PNG named .jpg lost its alpha channel silently
    x = _levels((6, 7, 4), 8, seed=4)
    png = write_image(tmp_path / "x.png", x)
    misnamed = tmp_path / "x.jpg"
    misnamed.write_bytes(png.read_bytes())
    np.testing.assert_array_equal(read_image(misnamed), x)
    jpeg = write_image(tmp_path / "y.jpg", x[..., :3])
    (tmp_path / "y.png").write_bytes(jpeg.read_bytes())
    np.testing.assert_array_equal(read_image(tmp_path / "y.png"), read_image(jpeg))


def test_float_tiff_outside_the_range_warns_and_clips(tmp_path):
    # before: clipped without a word
    import tifffile

    from focusfuse.io import ImageReadWarning

    x = np.linspace(-0.25, 1.25, 64, dtype=np.float32).reshape(8, 8)
    tifffile.imwrite(tmp_path / "f.tif", x)
    with pytest.warns(ImageReadWarning, match=r"f.tif has values outside \[0, 1\] \(min -0.25, "
                                              r"max 1.25\); they are clipped"):
        out = read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(out, np.clip(x, 0, 1))


@pytest.mark.parametrize("value,match", [(np.nan, "contains NaN"), (255.0, r"has values from 0.5 to 255, far outside")])
def test_float_tiff_with_nan_or_the_wrong_scale_is_refused(tmp_path, value, match):
    import tifffile

    x = np.full((8, 8), 0.5, np.float32)
    x[2, 2] = value
    tifffile.imwrite(tmp_path / "f.tif", x)
    with pytest.raises(ImageReadError, match=f"f.tif {match}"):
        read_image(tmp_path / "f.tif")


def test_float_tiff_strays_within_rounding_are_clipped_silently(tmp_path):
    # found by the fuzzer: -4e-39 came back from read_image, outside [0, 1]
    import tifffile

    x = np.full((8, 8), 0.5, np.float32)
    x[0, 0], x[0, 1] = -4e-39, 1 + 1e-7
    tifffile.imwrite(tmp_path / "f.tif", x)
    out = read_image(tmp_path / "f.tif")
    assert out.min() == 0.0 and out.max() == 1.0


def test_decoder_messages_become_ours_not_stray_lines(tmp_path, capfd):
    # before: "Corrupt JPEG data ..." and "[ WARN:0@...] global grfmt_png.cpp ..." lines on
    # stderr in 127 of 300 command-line runs
    from focusfuse.io import ImageReadWarning

    jpeg = write_image(tmp_path / "x.jpg", _levels((32, 32, 3), 8)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 2 // 3] + b"\xff\xd9")
    png = write_image(tmp_path / "x.png", _levels((32, 32, 3), 8)).read_bytes()
    (tmp_path / "cut.png").write_bytes(png[: len(png) // 2])
    capfd.readouterr()
    with pytest.warns(ImageReadWarning, match="cut.jpg: read, but the decoder reported damage: "
                                              "Corrupt JPEG data"):
        assert read_image(tmp_path / "cut.jpg").shape == (32, 32, 3)
    with pytest.raises(ImageReadError, match=r"cut.png: not a readable PNG image, damaged or cut "
                                             r"short \(PNG input buffer is incomplete\)"):
        read_image(tmp_path / "cut.png")
    assert capfd.readouterr().err == ""


def test_messages_of_read_errors_are_one_line(tmp_path):
    path = tmp_path / "x.tif"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(ImageReadError) as exc:
        read_image(path)
    assert "\n" not in str(exc.value)
