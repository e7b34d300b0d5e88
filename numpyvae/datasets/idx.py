"""A reader for IDX files, the format of MNIST and Fashion-MNIST.

Layout (http://yann.lecun.com/exdb/mnist/): a 4-byte magic number -- two zero
bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C
int32, 0x0D float32, 0x0E float64) and the number of dimensions -- then one
big-endian uint32 per dimension, then the values in C order, big-endian.
Labels files have magic 0x00000801 (uint8, one dimension), images files
0x00000803 (uint8, three dimensions: count, rows, columns).

The distributed files are gzip-compressed; both gzip and raw input are accepted
(recognised by gzip's two magic bytes 0x1f 0x8b).
"""

import gzip
import zlib

import numpy as np

from .errors import FormatError, read_source

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803

_TYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def decompress_if_gzip(data, where):
    """Return ``data`` decompressed if it starts with the gzip magic, else unchanged."""
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise FormatError(f"{where}: truncated gzip data (the compressed stream ends early)") from None
    except (OSError, zlib.error) as error:
        raise FormatError(f"{where}: corrupt gzip data: {error}") from None


def read_idx(source, expected_magic=None, where=None):
    """Parse an IDX file (path or bytes, gzip or raw) into a NumPy array.

    ``expected_magic`` (e.g. ``IMAGES_MAGIC``) makes a different magic number an
    error, so that swapping the images and labels files is caught.  The number
    of value bytes must equal the product of the dimensions exactly.  Returns a
    native-byte-order array (uint8 for MNIST).
    """
    data, where = read_source(source, where)
    data = decompress_if_gzip(data, where)
    if len(data) < 4:
        raise FormatError(f"{where}: truncated IDX file: {len(data)} bytes, no room for the magic number")
    magic = int.from_bytes(data[:4], "big")
    type_code, dimension_count = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _TYPE_CODES or dimension_count == 0:
        raise FormatError(
            f"{where}: not an IDX file: magic number 0x{magic:08x} "
            "(expected 0x000008NN..0x00000eNN; 0x00000801 labels, 0x00000803 images)"
        )
    if expected_magic is not None and magic != expected_magic:
        raise FormatError(
            f"{where}: wrong IDX magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            "(images and labels files swapped?)"
        )
    header_bytes = 4 + 4 * dimension_count
    if len(data) < header_bytes:
        raise FormatError(f"{where}: truncated IDX file: header needs {header_bytes} bytes, file has {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=dimension_count, offset=4))
    dtype = np.dtype(_TYPE_CODES[type_code])
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual_bytes = len(data) - header_bytes
    if actual_bytes < expected_bytes:
        raise FormatError(
            f"{where}: truncated IDX file: dimensions {shape} need {expected_bytes} data bytes, "
            f"found {actual_bytes}"
        )
    if actual_bytes > expected_bytes:
        raise FormatError(
            f"{where}: malformed IDX file: dimensions {shape} need {expected_bytes} data bytes, "
            f"found {actual_bytes} ({actual_bytes - expected_bytes} extra)"
        )
    values = np.frombuffer(data, dtype, offset=header_bytes).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
