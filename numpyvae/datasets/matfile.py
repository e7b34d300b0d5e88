"""A reader for MATLAB level-5 MAT files (the format of ``frey_rawface.mat``).

Written by hand because the library depends on NumPy only (no SciPy).  It
supports what numeric data sets need: numeric and logical arrays, real or
complex, stored plainly or inside ``miCOMPRESSED`` (zlib) elements, in either
byte order.  Other MATLAB classes (cell, struct, char, sparse, objects) are
skipped by ``read_mat`` and reported as unsupported by ``read_mat_variable``.

Layout (MATLAB "MAT-File Format" documentation, level 5):

* a 128-byte header: 116 bytes of text, 8 bytes of subsystem offset, a 2-byte
  version (0x0100) and the 2-byte endian indicator, the characters 'IM' when
  the file was written little-endian and 'MI' when big-endian;
* then data elements, each an 8-byte tag (uint32 type, uint32 byte count) and
  data padded to a multiple of 8 bytes.  A "small data element" packs the byte
  count into the upper 16 bits of the first tag word and up to 4 data bytes
  into the second word.
* An ``miMATRIX`` element holds sub-elements: array flags, dimensions, name,
  real part and, for complex arrays, the imaginary part.  Arrays are stored in
  column-major (Fortran) order, so a MATLAB array of size (560, 1965) has each
  of its 1965 columns stored contiguously; the arrays returned here keep the
  MATLAB shape and indexing (``array[:, j]`` is MATLAB's ``A(:, j+1)``).
"""

import zlib

import numpy as np

from .errors import FormatError

HEADER_BYTES = 128

# Data element types (miXXX) -> NumPy type character.
_ELEMENT_TYPES = {
    1: "i1",   # miINT8
    2: "u1",   # miUINT8
    3: "i2",   # miINT16
    4: "u2",   # miUINT16
    5: "i4",   # miINT32
    6: "u4",   # miUINT32
    7: "f4",   # miSINGLE
    9: "f8",   # miDOUBLE
    12: "i8",  # miINT64
    13: "u8",  # miUINT64
    16: "u1",  # miUTF8
    17: "u2",  # miUTF16
    18: "u4",  # miUTF32
}
_MI_MATRIX = 14
_MI_COMPRESSED = 15

# Array classes (mxXXX_CLASS) -> NumPy dtype of the returned array.  MATLAB may
# store the data with a smaller element type than the class (e.g. a double
# array of small integers as miUINT8), so the class decides the result type.
_NUMERIC_CLASSES = {
    6: "f8",   # mxDOUBLE_CLASS
    7: "f4",   # mxSINGLE_CLASS
    8: "i1",   # mxINT8_CLASS
    9: "u1",   # mxUINT8_CLASS
    10: "i2",  # mxINT16_CLASS
    11: "u2",  # mxUINT16_CLASS
    12: "i4",  # mxINT32_CLASS
    13: "u4",  # mxUINT32_CLASS
    14: "i8",  # mxINT64_CLASS
    15: "u8",  # mxUINT64_CLASS
}
_CLASS_NAMES = {1: "cell", 2: "struct", 3: "object", 4: "char", 5: "sparse", 16: "function handle", 17: "opaque"}
_FLAG_COMPLEX = 0x0800
_FLAG_LOGICAL = 0x0200


class _Unsupported:
    """Placeholder for a variable whose class this reader does not decode."""

    def __init__(self, class_name):
        self.class_name = class_name


def _read_bytes(source):
    if isinstance(source, (bytes, bytearray)):
        return source
    if isinstance(source, memoryview):
        return source.tobytes()
    with open(source, "rb") as handle:
        return handle.read()


def _parse_header(data, where):
    """Return the byte-order character ('<' or '>') after checking the header."""
    if len(data) < HEADER_BYTES:
        raise FormatError(
            f"{where}: not a MATLAB 5 MAT file: only {len(data)} bytes, "
            f"shorter than the {HEADER_BYTES}-byte header (truncated file?)"
        )
    indicator = data[126:128]
    if indicator == b"IM":
        byte_order = "<"
    elif indicator == b"MI":
        byte_order = ">"
    else:
        raise FormatError(
            f"{where}: not a MATLAB 5 MAT file: bytes 126-127 are {indicator!r}, "
            "expected the endian indicator 'IM' or 'MI' (a level-4 MAT file, an HTML "
            "error page saved under the file name, or another format?)"
        )
    version = int(np.frombuffer(data, byte_order + "u2", count=1, offset=124)[0])
    if version == 0x0200:
        raise FormatError(f"{where}: MATLAB 7.3 (HDF5) MAT files are not supported; re-save with save(..., '-v7')")
    if version != 0x0100:
        raise FormatError(f"{where}: unsupported MAT file version 0x{version:04x}; expected 0x0100 (level 5)")
    return byte_order


def _read_tag(data, offset, byte_order, where):
    """Return (type, byte count, data start, next element offset) of the element at ``offset``."""
    if offset + 8 > len(data):
        raise FormatError(f"{where}: truncated MAT file: data element tag at byte {offset} is cut off")
    first, second = np.frombuffer(data, byte_order + "u4", count=2, offset=offset)
    first, second = int(first), int(second)
    if first >> 16:
        # Small data element: byte count in the upper half of the first word.
        element_type, count = first & 0xFFFF, first >> 16
        if count > 4:
            raise FormatError(f"{where}: corrupt MAT file: small data element at byte {offset} claims {count} bytes")
        return element_type, count, offset + 4, offset + 8
    element_type, count = first, second
    start = offset + 8
    if start + count > len(data):
        raise FormatError(
            f"{where}: truncated MAT file: data element at byte {offset} needs {count} bytes, "
            f"only {len(data) - start} remain"
        )
    if element_type == _MI_COMPRESSED:
        # Compressed elements are not padded.
        return element_type, count, start, start + count
    return element_type, count, start, start + count + (-count % 8)


def _read_numeric(data, offset, byte_order, where, what):
    """Read a numeric sub-element; return (array, next offset)."""
    element_type, count, start, next_offset = _read_tag(data, offset, byte_order, where)
    if element_type not in _ELEMENT_TYPES:
        raise FormatError(f"{where}: corrupt MAT file: {what} has unknown data type {element_type}")
    dtype = np.dtype(byte_order + _ELEMENT_TYPES[element_type])
    if count % dtype.itemsize:
        raise FormatError(f"{where}: corrupt MAT file: {what} byte count {count} is not a multiple of {dtype.itemsize}")
    values = np.frombuffer(data, dtype, count=count // dtype.itemsize, offset=start)
    return values, next_offset


def _parse_matrix(data, start, end, byte_order, where):
    """Decode the body of an miMATRIX element; return (name, array or _Unsupported)."""
    flags, offset = _read_numeric(data, start, byte_order, where, "array flags")
    if flags.size < 1:
        raise FormatError(f"{where}: corrupt MAT file: empty array flags")
    flag_word = int(flags[0])
    array_class = flag_word & 0xFF
    dimensions, offset = _read_numeric(data, offset, byte_order, where, "dimensions")
    name_bytes, offset = _read_numeric(data, offset, byte_order, where, "array name")
    name = name_bytes.astype(np.uint8).tobytes().decode("ascii", errors="replace")
    if array_class not in _NUMERIC_CLASSES:
        return name, _Unsupported(_CLASS_NAMES.get(array_class, f"class {array_class}"))
    shape = tuple(int(d) for d in dimensions)
    if any(d < 0 for d in shape):
        raise FormatError(f"{where}: corrupt MAT file: variable {name!r} has negative dimensions {shape}")
    expected = int(np.prod(shape, dtype=np.int64))
    real, offset = _read_numeric(data, offset, byte_order, where, f"real part of {name!r}")
    if real.size != expected:
        raise FormatError(
            f"{where}: corrupt MAT file: variable {name!r} of size {shape} should hold "
            f"{expected} values, its data holds {real.size}"
        )
    result_type = np.dtype(_NUMERIC_CLASSES[array_class])
    values = real.astype(result_type)
    if flag_word & _FLAG_COMPLEX:
        imaginary, offset = _read_numeric(data, offset, byte_order, where, f"imaginary part of {name!r}")
        if imaginary.size != expected:
            raise FormatError(f"{where}: corrupt MAT file: imaginary part of {name!r} has {imaginary.size} values")
        values = values + 1j * imaginary.astype(result_type if result_type.kind == "f" else np.float64)
    if flag_word & _FLAG_LOGICAL:
        values = values.astype(bool)
    if offset > end:
        raise FormatError(f"{where}: corrupt MAT file: variable {name!r} overruns its element")
    # Column-major storage: reshape in Fortran order to keep MATLAB's indexing.
    return name, values.reshape(shape, order="F")


def _iterate_variables(data, where):
    byte_order = _parse_header(data, where)
    offset = HEADER_BYTES
    while offset < len(data):
        element_type, count, start, next_offset = _read_tag(data, offset, byte_order, where)
        if element_type == _MI_COMPRESSED:
            try:
                inner = zlib.decompress(data[start:start + count])
            except zlib.error as error:
                raise FormatError(f"{where}: corrupt compressed variable at byte {offset}: {error}") from None
            # The decompressed bytes hold one complete data element.
            inner_type, inner_count, inner_start, _ = _read_tag(inner, 0, byte_order, where + " (compressed)")
            if inner_type != _MI_MATRIX:
                raise FormatError(f"{where}: compressed element at byte {offset} holds type {inner_type}, not a matrix")
            yield _parse_matrix(inner, inner_start, inner_start + inner_count, byte_order, where)
        elif element_type == _MI_MATRIX:
            yield _parse_matrix(data, start, start + count, byte_order, where)
        # Other top-level element types carry no variables; skip them.
        offset = next_offset


def read_mat(source, where=None):
    """Read all numeric variables of a level-5 MAT file into a dict name -> array.

    ``source`` is a path or the file's bytes.  Arrays keep MATLAB's shape
    (column-major semantics).  Variables of unsupported classes are left out.
    Raises ``FormatError`` for a wrong header or a truncated/corrupt file.
    """
    where = where or (str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "<bytes>")
    data = _read_bytes(source)
    return {name: array for name, array in _iterate_variables(data, where) if not isinstance(array, _Unsupported)}


def read_mat_variable(source, name, where=None):
    """Read one variable of a level-5 MAT file; ``FormatError`` if absent or unsupported."""
    where = where or (str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "<bytes>")
    data = _read_bytes(source)
    seen = []
    for variable_name, array in _iterate_variables(data, where):
        if variable_name == name:
            if isinstance(array, _Unsupported):
                raise FormatError(f"{where}: variable {name!r} is a MATLAB {array.class_name} array, which is not supported")
            return array
        seen.append(variable_name)
    raise FormatError(f"{where}: no variable {name!r} in the MAT file; it holds {seen or 'no variables'}")
