"""``focusfuse stack``: frames from files, folders and globs; alignment; depth map; 16 bit and
metadata kept; bad input refused in one line with nothing written.

Frames are made here (a scikit-image photograph in depth zones, as in test_stack.py, with
a small breathing and shift per frame); the CNN runs the shipped fast model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from focusfuse.cli import main
from focusfuse.io import read_image, write_image

FAST = ["--weights", "fast", "--precision", "fp32", "--quiet"]


def _frames(folder, *, n=3, bit_depth=8, suffix=".png", moved=True, gray=False):
    from skimage import data

    sharp = data.astronaut()[40:232, 120:376].astype(np.float32) / 255
    if gray:
        sharp = cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY)
    h, w = sharp.shape[:2]
    zones = (np.mgrid[0:h, 0:w][1] * n // w)
    folder.mkdir(exist_ok=True)
    paths = []
    for k in range(n):
        f = sharp.copy()
        for z in range(n):
            if z != k:
                blurred = cv2.GaussianBlur(sharp, (0, 0), 1.5 * abs(k - z) + 1)
                f[zones == z] = blurred[zones == z]
        if moved:
            m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.2 * (k - 1), 1 + 0.01 * (k - 1))
            m[:, 2] += (1.5 * (k - 1), -1.0 * (k - 1))
            f = cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        paths.append(write_image(folder / f"frame_{k:02d}{suffix}", f, bit_depth=bit_depth))
    return paths, sharp, zones


def _fails(capsys, argv, match, outputs=()):
    code = main(["stack", *map(str, argv), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("focusfuse stack: error: ") and err.count("\n") == 1, err
    assert match in err, err
    for out in outputs:
        assert not out.exists()
    return err


def test_a_folder_of_frames_is_aligned_and_fused(tmp_path, capsys):
    paths, sharp, zones = _frames(tmp_path / "frames")
    out, depth = tmp_path / "fused.png", tmp_path / "depth.png"
    assert main(["stack", str(tmp_path / "frames"), "-o", str(out), "--depth-map", str(depth),
                 *FAST]) == 0
    assert "from 3 frames" in capsys.readouterr().out
    fused = read_image(out)
    inner = (slice(12, -12), slice(12, -12))
    psnr = 10 * np.log10(1 / np.mean((fused - sharp)[inner] ** 2))
    unaligned = tmp_path / "unaligned.png"
    assert main(["stack", *map(str, paths), "-o", str(unaligned), "--no-align", *FAST]) == 0
    psnr_unaligned = 10 * np.log10(1 / np.mean((read_image(unaligned) - sharp)[inner] ** 2))
    assert psnr > psnr_unaligned + 3 and psnr > 30
    d = read_image(depth, with_depth=True)
    assert d.bit_depth == 16
    index = np.rint(d.pixels * 2).astype(int)  # spread over the range: 0, 0.5, 1
    assert (index == zones)[inner].mean() > 0.9


@pytest.mark.parametrize("n", [3, 4])  # an even stack has two middle frames
def test_reversing_the_frames_changes_little_and_without_alignment_nothing(tmp_path, capsys, n):
    paths, _, _ = _frames(tmp_path / "frames", n=n)
    outs = {}
    for name, order, extra in (("f", paths, []), ("r", paths[::-1], []),
                               ("fn", paths, ["--no-align"]), ("rn", paths[::-1], ["--no-align"])):
        outs[name] = tmp_path / f"{name}.png"
        assert main(["stack", *map(str, order), "-o", str(outs[name]), *extra, *FAST]) == 0
    f, r = read_image(outs["f"]), read_image(outs["r"])
    # aligned: the reference is the middle frame either way; the chained links differ
    assert np.abs(f - r).mean() * 255 < 0.1 * 5
    np.testing.assert_array_equal(read_image(outs["fn"]), read_image(outs["rn"]))


def test_a_glob_and_16_bit_frames_give_16_bit(tmp_path, capsys):
    _frames(tmp_path / "frames", bit_depth=16, suffix=".tif", gray=True)
    out = tmp_path / "fused.tif"
    assert main(["stack", str(tmp_path / "frames" / "*.tif"), "-o", str(out), "--method",
                 "laplacian", "--quiet"]) == 0
    assert "(16 bit)" in capsys.readouterr().out
    assert read_image(out, with_depth=True).bit_depth == 16


def test_the_reference_frames_metadata_is_kept(tmp_path, capsys):
    from PIL import Image, ImageCms

    from focusfuse.metadata import Metadata, read_metadata, write_metadata

    paths, _, _ = _frames(tmp_path / "frames", suffix=".jpg")
    exif = Image.Exif()
    exif[0x010F] = "focusfuse test camera"  # Make
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_metadata(paths[1], Metadata(exif=exif.tobytes(), icc=icc))  # the middle frame
    for suffix in (".png", ".tif", ".jpg"):
        out = tmp_path / f"fused{suffix}"
        assert main(["stack", *map(str, paths), "-o", str(out), "--method", "laplacian",
                     "--quiet"]) == 0
        meta = read_metadata(out)
        assert meta.icc == icc
        got = Image.Exif()
        got.load(meta.exif)
        assert got[0x010F] == "focusfuse test camera"


@pytest.mark.parametrize("n", [3, 4])
def test_without_alignment_a_reversed_stack_gives_the_same_file(tmp_path, capsys, n):
    """Pixels and metadata: the frame whose EXIF the result carries is the middle one,
    chosen as the alignment chooses it, whatever the order given."""
    from PIL import Image

    from focusfuse.metadata import Metadata, read_metadata, write_metadata

    paths, _, _ = _frames(tmp_path / "frames", n=n, suffix=".jpg")
    for k, path in enumerate(paths):
        exif = Image.Exif()
        exif[0x010F] = f"frame {k}"  # Make
        write_metadata(path, Metadata(exif=exif.tobytes()))
    outs = [tmp_path / "forward.png", tmp_path / "reversed.png"]
    for order, out in zip((paths, paths[::-1]), outs):
        assert main(["stack", *map(str, order), "-o", str(out), "--no-align", *FAST]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    got = Image.Exif()
    got.load(read_metadata(outs[0]).exif)
    assert got[0x010F] in {f"frame {(n - 1) // 2}", f"frame {n // 2}"}


def test_align_only_writes_the_aligned_frames(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    aligned = tmp_path / "aligned"
    assert main(["stack", *map(str, paths), "--align-only", str(aligned), "--quiet"]) == 0
    written = sorted(aligned.iterdir())
    assert [p.name for p in written] == [p.name for p in paths]
    # the middle frame is the reference, unchanged; the others moved onto it
    np.testing.assert_array_equal(read_image(written[1]), read_image(paths[1]))
    before = np.abs(read_image(paths[0]) - read_image(paths[1])).mean()
    after = np.abs(read_image(written[0]) - read_image(written[1]))[12:-12, 12:-12].mean()
    assert after < before


def test_a_frame_that_cannot_be_aligned_is_left_out_or_refused(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    noise = np.random.default_rng(0).random(read_image(paths[0]).shape).astype(np.float32)
    write_image(paths[2], noise)
    out = tmp_path / "fused.png"
    assert main(["stack", *map(str, paths), "-o", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    assert "from 2 frames (1 left out)" in captured.out
    assert f"focusfuse stack: warning: could not align {paths[2].name}" in captured.err
    _fails(capsys, [*paths, "-o", tmp_path / "strict.png", "--strict", *FAST],
           f"could not align {paths[2].name}", [tmp_path / "strict.png"])


# bad input ------------------------------------------------------------------------------

def test_frames_of_different_sizes(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    write_image(paths[1], np.zeros((50, 60, 3), np.float32))
    err = _fails(capsys, [*paths, "-o", tmp_path / "f.png"], "same size", [tmp_path / "f.png"])
    assert paths[1].name in err


def test_gray_with_colour(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    gray, _, _ = _frames(tmp_path / "gray", gray=True)
    _fails(capsys, [paths[0], gray[1], "-o", tmp_path / "f.png"], "convert them all to gray",
           [tmp_path / "f.png"])


def test_mixed_bit_depths(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    deep, _, _ = _frames(tmp_path / "deep", bit_depth=16)
    _fails(capsys, [paths[0], deep[1], "-o", tmp_path / "f.png"], "frames mix bit depths",
           [tmp_path / "f.png"])


def test_fewer_than_two_frames(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames", n=2)
    _fails(capsys, [paths[0], "-o", tmp_path / "f.png"], "at least two frames")


def test_a_folder_with_other_files_warns_and_fuses(tmp_path, capsys):
    _frames(tmp_path / "frames")
    (tmp_path / "frames" / "notes.txt").write_text("shot at f/8")
    assert main(["stack", str(tmp_path / "frames"), "-o", str(tmp_path / "f.png"),
                 "--method", "laplacian", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "left out 1 file" in err and "notes.txt" in err


def test_an_unreadable_frame(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    paths[1].write_bytes(b"not an image")
    err = _fails(capsys, [*paths, "-o", tmp_path / "f.png"], paths[1].name, [tmp_path / "f.png"])
    assert "not a readable image" in err or "not" in err


def test_an_option_of_another_method_and_a_lossy_depth_map(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames", n=2)
    _fails(capsys, [*paths, "-o", tmp_path / "f.png", "--method", "laplacian",
                    "--guided-radius", "3"], "--guided-radius is an option of cnn")
    _fails(capsys, [*paths, "-o", tmp_path / "f.png", "--depth-map", tmp_path / "d.jpg"],
           "must be lossless", [tmp_path / "f.png"])


def test_no_output(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames", n=2)
    _fails(capsys, paths, "-o OUTPUT")


def test_crop_cuts_to_the_region_every_frame_covers(tmp_path, capsys):
    paths, _, _ = _frames(tmp_path / "frames")
    full, cropped = tmp_path / "full.png", tmp_path / "cropped.png"
    for out, extra in ((full, []), (cropped, ["--crop"])):
        assert main(["stack", *map(str, paths), "-o", str(out), "--method", "laplacian",
                     "--quiet", *extra]) == 0
    h, w = read_image(full).shape[:2]
    ch, cw = read_image(cropped).shape[:2]
    assert ch < h and cw < w and ch > h * 0.9 and cw > w * 0.9  # the frames moved by 1–2 %


def test_frames_kept_between_passes_change_nothing(tmp_path, monkeypatch):
    """Frames kept as 16-bit codes between the passes (and from the alignment to the
    fusion) give the floats read_image gives, and the same fused image as reading every
    frame again for every pass."""
    from focusfuse import stacking
    from focusfuse.fusion.registry import get_method

    paths, _, _ = _frames(tmp_path / "frames", n=4, bit_depth=16, suffix=".tif")
    frames = stacking.FileFrames(paths, stacking._Reader(None))
    for k, path in enumerate(paths):  # kept as read: bit for bit
        first = frames.decoded(k)
        assert np.array_equal(frames.decoded(k), first)
        assert np.array_equal(first, read_image(path))
    assert frames._used > 0 and all(e.data.dtype == np.uint16 for e in frames._kept.values())

    import focusfuse.io

    reads = []
    real_read = focusfuse.io.read_image
    monkeypatch.setattr(focusfuse.io, "read_image", lambda p, **kw: reads.append(p) or
                        real_read(p, **kw))
    options = get_method("cnn").make_options({"weights": "fast", "precision": "fp32"})
    kept, _ = stacking.run_stack(paths, "cnn", options)
    assert len(reads) == 4  # each frame read once: aligned, scored and blended from memory
    monkeypatch.setattr(stacking, "CACHE_BYTES", 0)
    again, _ = stacking.run_stack(paths, "cnn", options)
    assert len(reads) > 4 + 8  # read for the alignment and for each pass
    assert np.array_equal(kept.fused, again.fused)
    assert np.array_equal(kept.depth_map, again.depth_map)
