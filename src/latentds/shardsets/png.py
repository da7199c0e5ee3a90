"""PNG members read without a crash-prone native decoder: each image's zlib stream is inflated and checked once,
in full, and its rows are then unfiltered by PIL from the inflated bytes.

Why not torchvision's decoder: it (libpng) crashes the whole process on any libpng error instead of raising
(DEPENDENCIES.md). Measured with torchvision 0.29.1 on a 64x64 RGB PNG whose IDAT was rewritten with valid chunk
CRCs (tests/test_png.py keeps the cases): a flipped byte inside the zlib stream ("incorrect data check"), a
damaged deflate block ("invalid distance too far back"), a damaged zlib header, a wrong Adler-32, a short stream
("Not enough image data") and a row filter byte of 9 ("bad adaptive filter value") each end in a segmentation
fault; only too much data passes (a libpng warning). So a check that only verifies chunk CRCs is not enough:
CRCs catch damage (any flipped byte), but bytes built to carry valid CRCs around a malformed zlib stream would
still crash libpng. Only inflating the stream proves it sound. Until issue #23 the stream was inflated twice, once
to check it and again inside libpng, and the check cost as much as the decode.

Now ``plain_png`` inflates it once (``decompressobj``, bounded by the size the header implies) and checks
everything libpng would: chunk layout and CRCs, the header, the complete zlib stream with its checksum, the exact
size, every row filter byte. ``decode_plain_png`` then hands the inflated rows to PIL's C unfilter, wrapped as an
uncompressed ("stored") zlib stream, so nothing is inflated twice, and PIL raises (never crashes) on anything it
dislikes. The pixels are the ones libpng gives, byte for byte (tests/test_png.py compares them on every colour
type). Measured on 64x64 renders, CPU µs per image (benchmarks/stream.py's profile, 2026-12-07, a shared 2-core
machine): check 46 + unfilter 32 = 78, against 106 for the same check + torchvision's decode (60 alone).
The inflate and the CRCs are zlib-ng's (the ``zlib-ng`` package: the stdlib's zlib API, the same bytes and
errors): the check of a 64x64 render costs 12.9 µs against 37.3 with the stdlib's zlib 1.2.13, CPU per image,
the two side by side in one process (2026-12-07; benchmarks/stream.py's profile gives the stage in the stream).
Not chosen: a CRC-only check with PIL inflating and unfiltering the original stream in one go (~55 µs): PIL
stops after the last row and never reads the Adler-32, so crafted image data could decode to unchecked pixels.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng  # the stdlib zlib's API over zlib-ng: inflates these images ~4x faster (see above)

from latentds.errors import DamagedSampleError

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey + alpha, RGBA (palette images go the careful way)
_MODES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}
_CHUNK_HEAD = struct.Struct(">I4s").unpack_from
_U32 = struct.Struct(">I").unpack_from
_IHDR = struct.Struct(">IIBBBBB").unpack_from
_STORED_BLOCK = struct.Struct("<BHH").pack  # final flag, length, one's complement of the length
_STORED_MAX = 0xFFFF
MAX_PNG_SIDE = 1_000_000  # libpng's default limit
MAX_PLAIN_BYTES = 1 << 26  # larger images (over 64 MiB of pixels) go to PIL, whose decompression-bomb guard applies


def plain_png(data: bytes) -> tuple[int, int, int, bytes, bytes] | None:
    """(width, height, colour type, filtered rows, Adler-32) of a PNG that libpng would decode without any
    error: IHDR, IDAT..., IEND and nothing else, 8 bits per channel, not interlaced, every chunk CRC right, the
    image data a complete zlib stream (checksum included) of exactly the size the header implies, every row
    filter valid. The rows are the inflated image data (one filter byte, then the row's bytes).

    None for bytes that are no PNG or an unusual one (palette, 16 bits, interlaced, other chunks): PIL decodes
    those, or says what is wrong. DamagedSampleError for a damaged one: a chunk cut short or failing its CRC
    (any flipped byte), image data that is no sound zlib stream of the right size, a row filter over 4. Damage
    is reported here rather than left to PIL, which skips the CRCs of image data and could decode a damaged
    stream to other pixels.
    """
    if data[:8] != _PNG_SIGNATURE:
        return None
    view = memoryview(data)
    pos, end, idat, ihdr, unusual = 8, len(data), [], None, False
    while True:
        if pos + 12 > end:
            raise DamagedSampleError(f"its PNG is cut short at byte {pos} (no IEND chunk)")
        length, kind = _CHUNK_HEAD(data, pos)
        stop = pos + 8 + length
        if stop + 4 > end:
            raise DamagedSampleError(f"its PNG is cut short (a chunk at byte {pos} runs past the end)")
        if zlib_ng.crc32(view[pos + 4:stop]) != _U32(data, stop)[0]:
            raise DamagedSampleError(f"its PNG fails a chunk CRC (the chunk at byte {pos})")
        if ihdr is None:
            if kind != b"IHDR" or length != 13:
                raise DamagedSampleError("its PNG does not begin with a header chunk")
            ihdr = _IHDR(data, pos + 8)
        elif kind == b"IDAT":
            idat.append(view[pos + 8:stop])
        elif kind == b"IEND":
            break
        else:
            unusual = True  # a chunk libpng may handle in ways of its own: PIL decodes this PNG
        pos = stop + 4
    width, height, depth, colour, compression, filtering, interlace = ihdr
    if (unusual or length or stop + 4 != end or depth != 8 or colour not in _CHANNELS or compression
            or filtering or interlace or not 0 < width <= MAX_PNG_SIDE or not 0 < height <= MAX_PNG_SIDE):
        return None
    stride = 1 + width * _CHANNELS[colour]
    size = stride * height
    if size > MAX_PLAIN_BYTES:
        return None
    stream = idat[0] if len(idat) == 1 else b"".join(idat)
    inflate = zlib_ng.decompressobj()
    try:
        rows = inflate.decompress(stream, size + 1)
    except zlib_ng.error as e:
        raise DamagedSampleError(f"its PNG image data is damaged ({e})") from None
    if len(rows) > size:
        raise DamagedSampleError(f"its PNG image data inflates to more than the {size:,} bytes its header implies")
    if len(rows) < size or not inflate.eof:
        raise DamagedSampleError(f"its PNG image data is cut short ({len(rows):,} of {size:,} bytes inflated"
                                 f"{', no end of stream' * (len(rows) == size)})")
    if inflate.unused_data:
        raise DamagedSampleError("its PNG image data goes on after the end of its zlib stream")
    if max(rows[::stride]) > 4:
        raise DamagedSampleError("its PNG image data has a row filter over 4")
    return width, height, colour, rows, bytes(stream[-4:])  # a complete stream ends with its Adler-32


def png_is_plain(data: bytes) -> bool:
    """Whether ``plain_png`` passes ``data`` (returns its rows; see there)."""
    try:
        return plain_png(data) is not None
    except DamagedSampleError:
        return False


def stored_zlib(rows: bytes, adler: bytes) -> bytes:
    """``rows`` as a zlib stream of uncompressed ("stored") deflate blocks, ending with their Adler-32."""
    blocks = [b"\x78\x01"]
    for start in range(0, max(len(rows), 1), _STORED_MAX):
        piece = rows[start:start + _STORED_MAX]
        blocks += (_STORED_BLOCK(start + _STORED_MAX >= len(rows), len(piece), len(piece) ^ 0xFFFF), piece)
    blocks.append(adler)
    return b"".join(blocks)


def decode_plain_png(data: bytes) -> np.ndarray | None:
    """A plain PNG (``plain_png``) as a uint8 (H, W, 3) array of its RGB pixels, else None: grey replicated to
    three channels, alpha dropped (not composited), exactly as torchvision's ``decode_image(mode=RGB)`` does.
    A damaged PNG raises DamagedSampleError (see ``plain_png``).

    An array, not a tensor: a batch becomes one tensor when it is collated (a few torch calls per image cost
    more than the rest of this decode's Python; measured ~20 µs an image).
    """
    plain = plain_png(data)
    if plain is None:
        return None
    width, height, colour, rows, adler = plain
    mode = _MODES[colour]
    image = Image.frombytes(mode, (width, height), stored_zlib(rows, adler), "zip", mode)
    pixels = np.frombuffer(bytearray(image.tobytes()), dtype=np.uint8).reshape(height, width, _CHANNELS[colour])
    if colour in (0, 4):
        return np.repeat(pixels[..., :1], 3, axis=2)
    return pixels[..., :3] if colour == 6 else pixels
