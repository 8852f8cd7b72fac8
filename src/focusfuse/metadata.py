"""EXIF and ICC profile: read them from a source image, write them into an output file.

A fused image is written by :func:`focusfuse.io.write_image` without metadata; this module
carries the reference frame's camera data and colour profile over to it::

    meta = read_metadata("frames/f00.jpg")
    write_image("fused.tif", fused, bit_depth=16)
    write_metadata("fused.tif", meta)

The forms kept in :class:`Metadata`:

- ``exif``: one EXIF block in the form of a JPEG APP1 payload, ``b"Exif\\0\\0"`` followed by
  a TIFF header and IFD0 (what Pillow's ``info["exif"]`` and ``Image.Exif.tobytes()`` give);
  a block given without the ``Exif\\0\\0`` prefix (a PNG eXIf payload) gets it added.
- ``icc``: the ICC profile as its bytes (header with ``acsp`` at offset 36).

What each format carries, read and written:

- JPEG: the APP1 ``Exif`` segment as is, byte for byte, and the APP2 ``ICC_PROFILE``
  segments (a profile over 65519 bytes is split over several, numbered as ICC.1 B.4 says).
  The new segments go right after SOI and any APP0 (JFIF) segments; the entropy-coded data
  is copied untouched. An EXIF block over 65533 bytes does not fit one APP1 segment and is
  refused (``ValueError``).
- PNG: the ``eXIf`` chunk (the block without its ``Exif\\0\\0`` prefix) and the ``iCCP`` chunk
  (zlib-compressed), both written right after IHDR (so before PLTE and IDAT); on reading,
  ImageMagick's older ``Raw profile type exif`` / ``APP1`` text chunks are read too. Writing
  removes the file's old eXIf, iCCP and those text chunks, and the ``sRGB`` and ``cICP``
  chunks when a profile is written (they would override it). Only chunks before the first
  IDAT are read, as by Pillow: an eXIf placed after the image data is not seen.
- TIFF: the ICC profile is tag 34675 (InterColorProfile). "EXIF" in a TIFF file means these
  IFD0 tags, :data:`TIFF_EXIF_TAGS` (Make, Model, Orientation, DateTime, Artist, Copyright),
  together with the EXIF sub-IFD (tag 34665, with its Interoperability IFD) and the GPS
  sub-IFD (tag 34853); reading gathers them into one EXIF block, and writing puts those of
  a block back into IFD0 and the two sub-IFDs. Other IFD0 tags of the block (Software,
  ImageDescription, the resolution, ...) and its thumbnail (IFD1) are not carried; every
  carried tag keeps its TIFF type. To write, the single image of the file is re-encoded by
  tifffile with the same pixels, byte order, (Big)TIFF form, photometric, planar
  configuration, extra samples, tiling or strips, lossless compression and predictor,
  colour map, description, software and resolution; other tags (XMP, IPTC, ...) are not
  kept, and DateTime counts as EXIF. A multi-page file, a lossy-compressed one or one whose
  bit depth is not a whole byte is refused (``ValueError``).

Orientation: :func:`focusfuse.io.read_image` applies a JPEG's EXIF orientation to the
pixels (they come upright), so the EXIF written with them says ``Orientation = 1`` by
default (``orientation=1``). PNG and TIFF pixels are read as stored; pass
``orientation=None`` to keep the source's value when the source was one of those.

Reading looks at the headers only, never at the pixels, and an image whose metadata is
absent or cannot be parsed gives ``None`` for that field. Writing goes through a temporary
file in the same folder, renamed over the original (whose permission bits it gets); on any
error the original is left as it was and the temporary is removed.
"""

from __future__ import annotations

import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Metadata", "TIFF_EXIF_TAGS", "copy_metadata", "read_metadata", "write_metadata"]

EXIF_PREFIX = b"Exif\x00\x00"
_EXIF_HEADERS = (b"II*\x00", b"MM\x00*")  # an EXIF block is a classic TIFF
_ICC_PREFIX = b"ICC_PROFILE\x00"
_ICC_CHUNK = 65535 - 2 - len(_ICC_PREFIX) - 2  # 65519 profile bytes per APP2 segment
_APP1_PAYLOAD = 65535 - 2  # the segment length counts its own two bytes
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_EXIF_TEXT = ("Raw profile type exif", "Raw profile type APP1")  # ImageMagick's keys

#: the IFD0 tags of an EXIF block that a TIFF file carries, by number
TIFF_EXIF_TAGS = {271: "Make", 272: "Model", 274: "Orientation", 306: "DateTime",
                  315: "Artist", 33432: "Copyright"}
_ORIENTATION = 274
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 34665, 34853, 40965
_ICC_TAG = 34675
# tifffile will not write tags 34665 and 34853 itself: it writes these stand-ins, which sort
# at the same place among the tags, and the code and offset are patched afterwards
_TIFF_STAND_IN = {_EXIF_IFD: 34666, _GPS_IFD: 34854}
# compressions that tifffile decodes and encodes back to the same pixels
_LOSSLESS_TIFF = {"NONE", "ADOBE_DEFLATE", "DEFLATE", "LZW", "PACKBITS", "ZSTD", "LZMA"}


@dataclass(frozen=True)
class Metadata:
    """The EXIF block and the ICC profile of an image; ``None`` where it has none.

    ``exif`` is kept as ``b"Exif\\0\\0"`` + TIFF header + IFDs (a block given as the TIFF
    header alone gets the prefix); ``icc`` is the profile's bytes.
    """

    exif: bytes | None = None
    icc: bytes | None = None

    def __post_init__(self):
        for name in ("exif", "icc"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
                raise TypeError(f"{name} must be bytes or None; got {type(value).__name__}")
        exif = _canonical_exif(self.exif)
        if self.exif and exif is None:
            raise ValueError(
                f"exif must start with b'Exif\\x00\\x00' or a TIFF header (b'II*\\x00' or "
                f"b'MM\\x00*'); got {bytes(self.exif[:8])!r}; give the APP1 payload of a JPEG"
            )
        icc = _valid_icc(self.icc)
        if self.icc and icc is None:
            raise ValueError(
                f"icc must be an ICC profile (at least 128 bytes, b'acsp' at offset 36); got "
                f"{len(self.icc)} bytes; give the bytes of an .icc file"
            )
        object.__setattr__(self, "exif", exif)
        object.__setattr__(self, "icc", icc)


def _canonical_exif(data) -> bytes | None:
    if not data:
        return None
    data = re.sub(rb"^(Exif\x00\x00)+", b"", bytes(data))  # some writers double the prefix
    return EXIF_PREFIX + data if data[:4] in _EXIF_HEADERS else None


def _valid_icc(data) -> bytes | None:
    if not data:
        return None
    data = bytes(data)
    return data if len(data) >= 128 and data[36:40] == b"acsp" else None


def _kind(path: Path) -> str:
    """The file's type by its first bytes, as :func:`focusfuse.io.read_image` tells it."""
    from focusfuse.io import _sniff

    with open(path, "rb") as f:
        head = f.read(8)
    kind = _sniff(head)
    if kind is None:
        raise ValueError(f"{path}: not a JPEG, PNG or TIFF file (it starts with {head!r})")
    return kind


# reading ------------------------------------------------------------------------------

def read_metadata(path: str | os.PathLike) -> Metadata:
    """The EXIF block and ICC profile of a JPEG, PNG or TIFF file, from its headers only.

    The format is told by the file's first bytes, not its name. A field is ``None`` when the
    file has none or it cannot be parsed. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` for a file that is not a JPEG, PNG or TIFF.
    """
    path = Path(path)
    kind = _kind(path)
    try:
        exif, icc = _READERS[kind](path)
    except Exception:  # a damaged header is metadata we cannot carry, not a failure
        exif, icc = None, None
    return Metadata(_canonical_exif(exif), _valid_icc(icc))


def _read_with_pillow(path: Path, plugin) -> tuple[bytes | None, bytes | None]:
    # the plugin class opens the headers without Image.open's pixel-count guard, which
    # would refuse a very large frame although no pixel is decoded here
    with plugin(path) as im:
        info = dict(im.info)
    exif = info.get("exif")
    if exif is None:
        for key in _PNG_EXIF_TEXT:
            text = info.get(key)
            if isinstance(text, str):  # "\nexif\n   LENGTH\nHEX..." over several lines
                exif = bytes.fromhex("".join(text.split("\n")[3:]))
                break
    return exif, info.get("icc_profile")


def _read_jpeg(path: Path):
    from PIL import JpegImagePlugin

    return _read_with_pillow(path, JpegImagePlugin.JpegImageFile)


def _read_png(path: Path):
    from PIL import PngImagePlugin

    return _read_with_pillow(path, PngImagePlugin.PngImageFile)


def _read_tiff(path: Path):
    with open(path, "rb") as fp:
        head = _tiff_head(fp)
        ifd0 = _load_ifd(fp, head, None, None)
        icc = ifd0.get(_ICC_TAG)
        tree = _load_tree(fp, head, ifd0, keep=_TIFF_EXIF_KEEP)
    exif = None
    if tree:  # one classic-TIFF block in the file's byte order, at offset 8 after its header
        block_head = head[:2] + (b"\x2a\x00\x08\x00\x00\x00" if head[:2] == b"II"
                                 else b"\x00\x2a\x00\x00\x00\x08")
        exif = EXIF_PREFIX + block_head + _tree_bytes(block_head, tree, 8, None)
    return exif, (bytes(icc) if icc else None)


# An IFD tree: tag -> (TIFF type, value), where the value of a sub-IFD pointer (34665,
# 34853, 40965) is the sub-IFD's own tree. Keeping each tag's type lets a block be written
# again as it was typed (an SRATIONAL stays one, an UNDEFINED is not made BYTE).
_SUB_IFDS = {None: (_EXIF_IFD, _GPS_IFD), _EXIF_IFD: (_INTEROP_IFD,)}
_TIFF_EXIF_KEEP = tuple(TIFF_EXIF_TAGS) + (_EXIF_IFD, _GPS_IFD)
_LONG = 4


def _tiff_head(fp) -> bytes:
    head = fp.read(16)
    return head if head[2:4] in (b"+\x00", b"\x00+") else head[:8]  # BigTIFF: 16 bytes


def _load_ifd(fp, head: bytes, offset: int | None, group: int | None):
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    ifd = ImageFileDirectory_v2(head, group=group)
    fp.seek(ifd.next if offset is None else offset)
    ifd.load(fp)
    return ifd


def _load_tree(fp, head: bytes, ifd, *, keep=None, group=None) -> dict:
    """The tags of ``ifd`` (those in ``keep``, else all) with their sub-IFDs, read from fp."""
    tree = {}
    for tag in ifd if keep is None else [t for t in keep if t in ifd]:
        value = ifd[tag]
        if tag in _SUB_IFDS.get(group, ()):
            if not isinstance(value, int):
                continue  # a damaged pointer: leave that sub-IFD out
            sub = _load_ifd(fp, head, value, tag)
            value = _load_tree(fp, head, sub, group=tag)
        tree[tag] = (ifd.tagtype[tag], value)
    return tree


def _tree_bytes(head: bytes, tree: dict, offset: int, group: int | None) -> bytes:
    """``tree`` as an IFD placed at ``offset`` of a file that starts with ``head``,
    followed by its sub-IFDs; every offset in it counts from the start of that file."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    def ifd_bytes(pointers: dict[int, int]) -> bytes:
        ifd = ImageFileDirectory_v2(head, group=group)
        for tag, (typ, value) in tree.items():
            ifd.tagtype[tag] = _LONG if tag in pointers else typ
            ifd[tag] = pointers.get(tag, value)
        return ifd.tobytes(offset)

    subs = {tag: value for tag, (_, value) in tree.items() if isinstance(value, dict)}
    at = offset + len(ifd_bytes(dict.fromkeys(subs, 0)))  # the pointers' size is fixed
    pointers, tail = {}, b""
    for tag, sub in subs.items():
        pointers[tag] = at
        data = _tree_bytes(head, sub, at, tag)
        data += b"\x00" * (len(data) & 1)  # the next IFD starts on a word boundary
        tail += data
        at += len(data)
    return ifd_bytes(pointers) + tail


_READERS = {"jpeg": _read_jpeg, "png": _read_png, "tiff": _read_tiff}


# writing ------------------------------------------------------------------------------

def write_metadata(path: str | os.PathLike, metadata: Metadata, *,
                   orientation: int | None = 1) -> None:
    """Put ``metadata`` into the JPEG, PNG or TIFF file at ``path``, in place.

    Afterwards the file's EXIF and ICC profile are those of ``metadata``: a ``None`` field
    removes that kind of metadata from the file. The pixels stay as they are (JPEG and PNG
    image data are copied byte for byte; a TIFF is re-encoded losslessly, same dtype).
    ``orientation`` is the Orientation written when the EXIF has one: 1 (the default) for
    pixels that are upright as read, ``None`` to keep the EXIF's own value.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a file that is not
    a JPEG, PNG or TIFF, or for metadata the format cannot hold; the file is then unchanged.
    """
    if not isinstance(metadata, Metadata):
        raise TypeError(f"metadata must be a Metadata; got {type(metadata).__name__}; "
                        "build one with Metadata(exif=..., icc=...) or read_metadata(source)")
    if orientation is not None and (type(orientation) is not int or not 1 <= orientation <= 8):
        raise ValueError(f"orientation must be 1 to 8 or None; got {orientation!r}")
    path = Path(os.path.realpath(path))  # through a link: replace the file, not the link
    kind = _kind(path)
    exif = metadata.exif
    if exif is not None and orientation is not None:
        exif = _with_orientation(exif, orientation)
    from focusfuse.io import _publish

    mode = os.stat(path).st_mode & 0o7777
    if kind == "tiff":
        data = _tiff_with(path, exif, metadata.icc)
    else:
        build = _jpeg_with if kind == "jpeg" else _png_with
        data = build(path.read_bytes(), exif, metadata.icc, path)
    _publish(data, path, mode=mode)  # in one step, as write_image writes (docs/robustness.md)


def copy_metadata(source: str | os.PathLike, target: str | os.PathLike) -> Metadata:
    """Put the EXIF and ICC profile of the image ``source`` into the image ``target`` (a
    fused result of frames read by :func:`focusfuse.io.read_image`), when it has any: the
    Orientation is set to 1 for a JPEG source, whose pixels are read upright, and kept for
    PNG and TIFF, which are read as stored. Returns what was carried."""
    meta = read_metadata(source)
    if meta.exif is not None or meta.icc is not None:
        upright = _kind(Path(source)) == "jpeg"
        write_metadata(target, meta, orientation=1 if upright else None)
    return meta


def _with_orientation(exif: bytes, value: int) -> bytes:
    """The block with IFD0's Orientation (a SHORT or LONG, count 1) set to ``value``,
    every other byte unchanged; the block itself when it has no Orientation."""
    tiff = exif[len(EXIF_PREFIX):]
    order = "<" if tiff[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for i in range(count):
            at = ifd + 2 + 12 * i
            tag, typ, n = struct.unpack_from(order + "HHI", tiff, at)
            if tag == _ORIENTATION and n == 1 and typ in (3, 4):
                value_bytes = struct.pack(order + ("H" if typ == 3 else "I"), value)
                at += 8
                tiff = tiff[:at] + value_bytes + tiff[at + len(value_bytes):]
                return EXIF_PREFIX + tiff
    except struct.error:  # a truncated IFD: leave the block as it is
        pass
    return exif


# JPEG

def _jpeg_with(data: bytes, exif: bytes | None, icc: bytes | None, path: Path) -> bytes:
    if exif is not None and len(exif) > _APP1_PAYLOAD:
        raise ValueError(f"output {path}: the EXIF block has {len(exif)} bytes and a JPEG "
                         f"APP1 segment holds at most {_APP1_PAYLOAD}; drop its MakerNote "
                         "or thumbnail, or write PNG or TIFF")
    new = []
    if exif is not None:
        new.append(_jpeg_segment(0xE1, exif))
    if icc is not None:
        chunks = [icc[i:i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
        if len(chunks) > 255:
            raise ValueError(f"output {path}: the ICC profile has {len(icc)} bytes, more "
                             f"than 255 JPEG segments hold ({255 * _ICC_CHUNK})")
        new += [_jpeg_segment(0xE2, _ICC_PREFIX + bytes([i + 1, len(chunks)]) + chunk)
                for i, chunk in enumerate(chunks)]
    head, rest = _jpeg_segments(data, path)
    kept = [(marker, seg) for marker, seg in head
            if not (marker == 0xE1 and seg[4:10] == EXIF_PREFIX)
            and not (marker == 0xE2 and seg[4:16] == _ICC_PREFIX)]
    at = 0
    while at < len(kept) and kept[at][0] == 0xE0:  # after JFIF / JFXX APP0
        at += 1
    segments = [seg for _, seg in kept[:at]] + new + [seg for _, seg in kept[at:]]
    return b"\xff\xd8" + b"".join(segments) + rest


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _jpeg_segments(data: bytes, path: Path) -> tuple[list[tuple[int, bytes]], bytes]:
    """The marker segments between SOI and the first SOS, and the rest of the file."""
    segments, at = [], 2
    while True:
        if at + 2 > len(data) or data[at] != 0xFF:
            raise ValueError(f"{path}: damaged JPEG (no marker at byte {at}); write it again")
        while at + 1 < len(data) and data[at + 1] == 0xFF:  # fill bytes
            at += 1
        marker = data[at + 1]
        if marker in (0xDA, 0xD9):  # SOS, EOI: the rest is copied as it is
            return segments, data[at:]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            segments.append((marker, data[at:at + 2]))
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2) if at + 4 <= len(data) else (0,)
        if length < 2 or at + 2 + length > len(data):
            raise ValueError(f"{path}: damaged JPEG (segment at byte {at} runs past the end); "
                             "write it again")
        segments.append((marker, data[at:at + 2 + length]))
        at += 2 + length


# PNG

def _png_with(data: bytes, exif: bytes | None, icc: bytes | None, path: Path) -> bytes:
    chunks = _png_chunks(data, path)
    drop = {b"eXIf", b"iCCP"} | ({b"sRGB", b"cICP"} if icc is not None else set())
    kept = [(kind, chunk) for kind, chunk in chunks
            if kind not in drop and not _is_png_exif_text(kind, chunk)]
    new = []
    if icc is not None:  # name, NUL, compression method 0, zlib stream
        new.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    if exif is not None:
        new.append(_png_chunk(b"eXIf", exif[len(EXIF_PREFIX):]))
    # IHDR comes first; iCCP must precede PLTE and IDAT, eXIf must precede IDAT
    return _PNG_SIGNATURE + kept[0][1] + b"".join(new) + b"".join(c for _, c in kept[1:])


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_chunks(data: bytes, path: Path) -> list[tuple[bytes, bytes]]:
    """Every chunk of the file as (type, the whole chunk's bytes), up to IEND."""
    chunks, at = [], len(_PNG_SIGNATURE)
    while at + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4:at + 8]
        chunks.append((kind, data[at:at + 12 + length]))
        at += 12 + length
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND" or at > len(data):
        raise ValueError(f"{path}: damaged PNG (no IHDR first or no IEND); write it again")
    return chunks


def _is_png_exif_text(kind: bytes, chunk: bytes) -> bool:
    if kind not in (b"tEXt", b"zTXt", b"iTXt"):
        return False
    keyword = chunk[8:].split(b"\x00", 1)[0]
    return keyword.decode("latin-1") in _PNG_EXIF_TEXT


# TIFF

def _tiff_with(path: Path, exif: bytes | None, icc: bytes | None) -> bytes:
    """The TIFF at ``path`` re-encoded (same pixels and layout) with ``exif`` and ``icc``."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if len(tif.pages) != 1:
            raise ValueError(f"{path}: has {len(tif.pages)} images; metadata is written into "
                             "single-image TIFF files only")
        page = tif.pages[0]
        if page.compression.name not in _LOSSLESS_TIFF:
            raise ValueError(f"{path}: compression {page.compression.name} would be re-encoded "
                             "with loss; write the image uncompressed or with deflate")
        pixels = page.asarray()
        if pixels.dtype.itemsize * 8 != page.bitspersample:
            raise ValueError(f"{path}: {page.bitspersample}-bit samples cannot be written "
                             "back as they are; write 8- or 16-bit samples")
        tags = page.tags
        options = dict(
            photometric=page.photometric, planarconfig=page.planarconfig,
            extrasamples=page.extrasamples or None,
            compression=page.compression if page.compression.name != "NONE" else None,
            predictor=page.predictor if page.predictor > 1 else None,
            colormap=page.colormap if page.photometric.name == "PALETTE" else None,
            description=tags[270].value if 270 in tags else None,
            software=tags[305].value if 305 in tags else False,
            metadata=None, byteorder=tif.byteorder, bigtiff=tif.is_bigtiff,
        )
        if page.is_tiled:
            options["tile"] = (page.tilelength, page.tilewidth)
        else:
            options["rowsperstrip"] = page.rowsperstrip
        if 282 in tags and 283 in tags:
            options["resolution"] = (tags[282].value, tags[283].value)
            options["resolutionunit"] = tags[296].value if 296 in tags else None

    extratags, subs = [], {}
    if exif is not None:
        block = io.BytesIO(exif[len(EXIF_PREFIX):])
        block_head = block.read(8)
        tree = _load_tree(block, block_head, _load_ifd(block, block_head, None, None),
                          keep=_TIFF_EXIF_KEEP)
        for tag, (typ, value) in tree.items():
            if tag in _TIFF_STAND_IN:
                subs[tag] = value
                extratags.append((_TIFF_STAND_IN[tag], "I", 1, 0, True))
            elif isinstance(value, (str, bytes)):
                text = value.encode("latin-1", "replace") if isinstance(value, str) else value
                extratags.append((tag, "s", 0, text, True))
            elif isinstance(value, int):
                extratags.append((tag, "H" if typ == 3 else "I", 1, value, True))

    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, iccprofile=icc, extratags=extratags, **options)
    if subs:
        _append_sub_ifds(buf, subs)
    return buf.getvalue()


def _append_sub_ifds(f, subs: dict[int, dict]) -> None:
    """Write each sub-IFD tree at the end of the file ``f`` (open for reading and writing)
    and point its IFD0 entry at it."""
    f.seek(0)
    head = _tiff_head(f)
    order = "<" if head[:2] == b"II" else ">"
    big = len(head) == 16
    (ifd0,) = struct.unpack_from(order + ("Q" if big else "I"), head, 8 if big else 4)
    f.seek(ifd0)
    count_size, entry_size = (8, 20) if big else (2, 12)
    (count,) = struct.unpack(order + ("Q" if big else "H"), f.read(count_size))
    entries = f.read(count * entry_size)
    codes = [struct.unpack_from(order + "H", entries, i * entry_size)[0]
             for i in range(count)]
    for pointer, tree in subs.items():
        end = f.seek(0, os.SEEK_END)
        end += end & 1  # an IFD starts on a word boundary
        f.seek(end)
        f.write(_tree_bytes(head, tree, end, pointer))
        at = ifd0 + count_size + codes.index(_TIFF_STAND_IN[pointer]) * entry_size
        f.seek(at)
        f.write(struct.pack(order + "H", pointer))
        f.seek(at + (12 if big else 8))
        f.write(struct.pack(order + "I", end))
