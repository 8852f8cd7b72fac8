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


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_interrupted_write_leaves_no_file_and_keeps_old_one(tmp_path, monkeypatch, suffix):
    # an interrupt (Ctrl-C) at the moment of the rename: the old file stays as it was and
    # the temporary file is removed
    import focusfuse.io as fio

    path = write_image(tmp_path / f"x{suffix}", _levels((8, 8), 8))
    before = path.read_bytes()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(fio.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(path, _levels((8, 8), 8, seed=1))
    with pytest.raises(KeyboardInterrupt):
        write_image(tmp_path / f"new{suffix}", _levels((8, 8), 8, seed=1))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"x{suffix}"]


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
