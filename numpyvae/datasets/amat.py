"""A reader for the binarized MNIST ``.amat`` text files (Larochelle & Murray).

Each line is one image: 784 characters ``0`` or ``1`` separated by single
spaces and ended by ``\\n`` -- exactly 1568 bytes.  ``numpy.loadtxt`` takes
tens of seconds on the 50000-line training file, so the bytes are viewed as a
fixed-width table instead, after checking that every separator and value is
where it must be; a violation is reported with its line number.
"""

import numpy as np

from .errors import FormatError, read_source

_ZERO, _ONE, _SPACE, _NEWLINE = ord("0"), ord("1"), ord(" "), ord("\n")


def _describe_bad_line(data, columns, where):
    """Locate the first malformed line (slow path, only runs on bad input)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        fields = line.split(b" ")
        if len(fields) != columns:
            return (
                f"{where}, line {number}: expected {columns} values separated by single spaces, "
                f"found {len(fields)} fields"
            )
        for column, value in enumerate(fields, start=1):
            if value not in (b"0", b"1"):
                return f"{where}, line {number}, value {column}: expected 0 or 1, found {bytes(value[:20])!r}"
    return f"{where}: malformed .amat file (unexpected byte layout)"


def read_binarized_amat(source, columns=784, where=None):
    """Parse a binarized ``.amat`` file (path or bytes) into a uint8 array (lines, columns).

    Values are exactly 0 or 1.  A missing newline after the last line is
    tolerated; anything else that deviates from the format (other values, two
    spaces, carriage returns, a short line) raises ``FormatError`` naming the
    first bad line.
    """
    data, where = read_source(source, where)
    if not data:
        raise FormatError(f"{where}: empty .amat file")
    if not data.endswith(b"\n"):
        data = bytes(data) + b"\n"
    line_bytes = 2 * columns
    if len(data) % line_bytes:
        raise FormatError(_describe_bad_line(data, columns, where))
    table = np.frombuffer(data, np.uint8).reshape(-1, line_bytes)
    values = table[:, 0::2]
    separators = table[:, 1::2]
    well_formed = (
        np.all(separators[:, :-1] == _SPACE)
        and np.all(separators[:, -1] == _NEWLINE)
        and np.all((values == _ZERO) | (values == _ONE))
    )
    if not well_formed:
        raise FormatError(_describe_bad_line(data, columns, where))
    return values - np.uint8(_ZERO)
