"""A minimal download progress display on standard error.

On a terminal one line is redrawn in place (at most ten times a second).  When
standard error is a file or a pipe -- a CI log -- only a start line and an end
line are written, so logs stay short.
"""

import sys
import time


def _human(byte_count):
    value = float(byte_count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


class Progress:
    """Report the progress of one transfer labelled ``label`` of ``total`` bytes (None if unknown)."""

    def __init__(self, label, total=None, stream=None, interval=0.1):
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.interval = interval
        self.done = 0
        self._last_draw = 0.0
        isatty = getattr(self.stream, "isatty", None)
        self._interactive = bool(isatty and isatty())
        if not self._interactive:
            size = f" ({_human(total)})" if total else ""
            self._write(f"{label}{size} ...\n")

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not abort a download
            pass

    def _line(self):
        if self.total:
            percent = min(100.0, 100.0 * self.done / self.total)
            return f"\r{self.label}: {_human(self.done)} / {_human(self.total)} ({percent:5.1f}%)"
        return f"\r{self.label}: {_human(self.done)}"

    def update(self, byte_count):
        """Count ``byte_count`` more bytes received."""
        self.done += byte_count
        now = time.monotonic()
        if self._interactive and now - self._last_draw >= self.interval:
            self._last_draw = now
            self._write(self._line())

    def close(self, outcome="done"):
        """Finish the display with ``outcome`` (e.g. "done" or "failed")."""
        if self._interactive:
            self._write(self._line() + f" {outcome}\n")
        else:
            self._write(f"{self.label}: {_human(self.done)} {outcome}\n")


class Silent:
    """A progress display that shows nothing (``progress=False``)."""

    def __init__(self, *arguments, **keywords):
        pass

    def update(self, byte_count):
        pass

    def close(self, outcome="done"):
        pass
