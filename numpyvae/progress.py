"""A small progress bar for long loops: rate, ETA and any extra fields (e.g. the ELBO).

On a terminal one line is redrawn in place (at most ``redraw_seconds`` apart). When
the stream is a file or a pipe (CI logs, ``2> log``), carriage returns would make a
mess, so plain lines are written instead, at most one every ``line_seconds``.

    bar = ProgressBar(total=10**6, initial=0, unit="samples")
    bar.update(done, elbo="-123.4")   # cheap when nothing is drawn
    bar.close()
"""
import sys
import time


def format_count(value):
    """1234567 -> '1.23M' (compact, for counts of samples)."""
    value = float(value)
    for threshold, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= threshold:
            return f"{value / threshold:.3g}{suffix}"
    return f"{value:.0f}"


def format_duration(seconds):
    """Seconds as 'm:ss' or 'h:mm:ss'; '?' when unknown."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class ProgressBar:
    """Progress of ``done`` out of ``total`` units, starting at ``initial``.

    The rate is measured from this bar's own start, over the units done since
    ``initial`` (a resumed run's earlier samples do not inflate it).
    """

    def __init__(self, total, initial=0, unit="samples", label="", stream=None,
                 width=24, redraw_seconds=0.2, line_seconds=10.0, clock=time.monotonic):
        self.total = max(int(total), 1)
        self.initial = int(initial)
        self.done = int(initial)
        self.unit, self.label, self.width = unit, label, width
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.interactive = bool(isatty and isatty())
        self.interval = redraw_seconds if self.interactive else line_seconds
        self.clock = clock
        self.start = clock()
        self._last_draw = None
        self.fields = {}

    def rate(self):
        """Units per second since the bar started."""
        elapsed = self.clock() - self.start
        return (self.done - self.initial) / elapsed if elapsed > 0 else 0.0

    def eta(self):
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def line(self):
        fraction = min(max(self.done / self.total, 0.0), 1.0)
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        extra = "".join(f"  {key} {value}" for key, value in self.fields.items())
        label = f"{self.label} " if self.label else ""
        return (f"{label}[{bar}] {100 * fraction:5.1f}% {format_count(self.done)}/"
                f"{format_count(self.total)} {self.unit}  {format_count(self.rate())} {self.unit}/s"
                f"  ETA {format_duration(self.eta())}{extra}")

    def update(self, done, force=False, **fields):
        """Set the count to ``done`` (and fields such as elbo=...); draw if due."""
        self.done = int(done)
        self.fields.update(fields)
        now = self.clock()
        if force or self._last_draw is None or now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw()

    def message(self, text):
        """Print a line of text without garbling the bar."""
        if self.interactive:
            self._write("\r\033[K" + text + "\n")
            self._draw()
        else:
            self._write(text + "\n")

    def _draw(self):
        if self.interactive:
            self._write("\r\033[K" + self.line())
        else:
            self._write(self.line() + "\n")

    def close(self):
        """Draw the final state and end the line."""
        if self.interactive:
            self._write("\r\033[K" + self.line() + "\n")
        else:
            self._write(self.line() + "\n")

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe must not kill a training run
            pass
