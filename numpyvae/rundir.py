"""The run directory that ``numpyvae.train`` writes and ``numpyvae.evaluate`` reads.

    config.json        every setting, the model's name and constructor arguments, the command
    metrics.jsonl      one JSON object per evaluation (samples_seen, train/test metrics, ...)
    checkpoint.npz     parameters, buffers, optimizer state, RNG states, data order position
    evaluation.json    every evaluation result, keyed by what was evaluated
    figures/*.png      learning curve, reconstructions, samples, latent space, interpolation,
                       traversal, per model; redrawn while training (numpyvae.train)
    .lock              while a process trains in it: its pid, host and start time

What this module guarantees: every file is written whole or not at all (a temporary
file in the same directory, fsync, then rename); a torn last line of metrics.jsonl
(a crash mid-append) is dropped on reading, with a note; orphaned temporaries of a
killed process are removed; one process at a time trains in a directory; a full disk,
and a directory that cannot be written, are reported in one line with what to do. What
config.json holds is checked by numpyvae.runconfig.
"""
import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path

from .checkpoint import CHECKPOINT_NAME, write_atomically

CONFIG_NAME, METRICS_NAME, FIGURES_DIR = "config.json", "metrics.jsonl", "figures"
EVALUATION_NAME, LOCK_NAME = "evaluation.json", ".lock"
# The temporaries of a training process: checkpoint.save's, and write_atomic's
# (mkstemp names them .NAME.XXXXXXXX.tmp) of config.json, metrics.jsonl and the figures,
# plus the fixed names that versions before the run lock used. Not evaluation.json's:
# evaluate takes no lock, so one of those may belong to a live process.
TEMPORARY_PATTERNS = (".checkpoint-*.npz.tmp", f".{CONFIG_NAME}.*.tmp",
                      f".{METRICS_NAME}.*.tmp", f"{CONFIG_NAME}.tmp", f"{METRICS_NAME}.tmp",
                      f"{FIGURES_DIR}/.*.png.*.tmp")
DISK_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class UsageError(Exception):
    """A problem with the command line, the data or a run directory: print and exit 2."""


class RunLockedError(UsageError):
    """Another live process holds the run directory."""


class RunFileError(UsageError, ValueError):
    """A file of a run directory is not what numpyvae writes (edited by hand, or damaged);
    the message (one line) names the file and what is wrong in it."""


class NotWritableError(UsageError):
    """A run directory cannot be written (read-only, or another user's); the message
    (one line) says how to go on."""

    def __init__(self, path, run_dir, reason):
        self.path, self.run_dir, self.reason = Path(path), Path(run_dir), reason
        super().__init__(not_writable_message(self.run_dir, reason))


class DiskFullError(Exception):
    """A write of ``path`` in ``run_dir`` failed because the disk (or quota) is full;
    the message (one line) says what to do."""

    def __init__(self, path, run_dir=None):
        self.path = Path(path)
        self.run_dir = Path(run_dir) if run_dir is not None else self.path.parent
        super().__init__(disk_full_message(self.path, self.run_dir))


def is_disk_full(error):
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def disk_full_message(path, run_dir):
    """One line: what failed, where, what to free, how to continue (--resume once the
    run has a checkpoint; before that, the same command again)."""
    if (Path(run_dir) / CHECKPOINT_NAME).exists():
        then = f"continue with: python -m numpyvae.train --resume {run_dir}"
    else:
        then = "run the same command again"
    return (f"the disk holding {run_dir} is full (writing {path} failed with ENOSPC). The "
            f"files already there are intact. Free some space on that disk (or quota), then "
            f"{then}")


def is_not_writable(error):
    """Whether an OSError says that a directory or file may not be written (permissions,
    a read-only file system), rather than that something failed."""
    return isinstance(error, PermissionError) or (
        isinstance(error, OSError) and error.errno == errno.EROFS)


def not_writable_message(run_dir, reason):
    """One line: that ``run_dir`` cannot be written, and how to go on (a run: resume a
    copy of it; before a checkpoint exists: another --out)."""
    if (Path(run_dir) / CHECKPOINT_NAME).exists():
        then = ("to continue the run, copy it and resume the copy: cp -r "
                f"{run_dir} NEW && python -m numpyvae.train --resume NEW")
    else:
        then = "choose another --out"
    return f"cannot write in {run_dir} ({reason}): {then}"


def write_atomic(path, text):
    """Write ``text`` to ``path`` whole or not at all (checkpoint.write_atomically).
    A full disk raises DiskFullError (the old file, if any, is intact)."""
    try:
        write_atomically(path, lambda handle: handle.write(text), binary=False)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path) from None
        raise


def write_json(path, value):
    write_atomic(path, json.dumps(value, indent=2) + "\n")


def read_config(run_dir, purpose="--resume"):
    """config.json of a run directory as JSON; ``purpose`` names the command in messages.
    What it holds is checked by numpyvae.runconfig (``read_run``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{purpose} {run_dir}: no such directory.")
    path = run_dir / CONFIG_NAME
    try:
        with open(path) as handle:
            config = json.load(handle)
    except OSError as error:
        raise UsageError(f"{purpose} {run_dir}: cannot read {CONFIG_NAME} ({error.strerror}). "
                         "Is this a run directory written by numpyvae.train?") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"{purpose} {run_dir}: {CONFIG_NAME} is not valid JSON ({error}).") from None
    return config


def model_name(config):
    """The registry name of a run's model (runs from before the family are "vae")."""
    return config.get("model_name", "vae")


def check_checkpoint(meta, config, where):
    """Refuse a checkpoint that another model wrote than ``config`` describes: its
    model's options (seed included) and its registry name, as the checkpoint recorded
    them. Checkpoints from before these were recorded pass."""
    for key, recorded, described in (("model", meta.get("model"), config.get("model")),
                                     ("model_name", meta.get("model_name"), model_name(config))):
        if recorded is not None and recorded != described:
            raise UsageError(f"{where} was written by another model than {CONFIG_NAME} "
                             f"describes ({key}: checkpoint {recorded}, config {described}); "
                             f"restore {CONFIG_NAME} or the checkpoint of this run.")


@contextlib.contextmanager
def evaluation_lock(results):
    """Held while the results file (RUN_DIR/evaluation.json, or evaluate's --results) is
    read, changed and written, so that evaluations run at the same time wait their turn
    instead of losing each other's results (an advisory flock on the file beside it named
    RESULTS.lock, released if the process dies)."""
    path = Path(results).with_name(Path(results).name + ".lock")
    try:
        import fcntl   # noqa: PLC0415  (POSIX; elsewhere the file is written unlocked)
    except ImportError:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_aside(path, reason, warn=None):
    """Keep a damaged file under a new name (never delete what was recorded) and say so."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    count = 1
    while target.exists():
        target = path.with_name(f"{path.name}.damaged-{stamp}-{count}")
        count += 1
    os.replace(path, target)
    (warn or (lambda message: print(message, file=sys.stderr)))(
        f"{path} was damaged ({reason}): kept as {target.name}; a new {path.name} starts "
        "with this result.")
    return target


# ----------------------------------------------------------------------- metrics
def read_metrics(run_dir, warn=None):
    """The records of metrics.jsonl. Lines that do not parse (a crash mid-append tears
    the last one) are dropped; ``warn(message)`` is told how many."""
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return []
    records, torn = [], 0
    with open(path, errors="replace") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn += 1
                continue
            if isinstance(record, dict) and "samples_seen" in record:
                records.append(record)
            else:
                torn += 1
    if torn and warn is not None:
        warn(f"{path}: dropped {torn} unreadable line{'s' * (torn > 1)} (a write cut short "
             "by a crash); those evaluations will be made again.")
    return records


def append_metrics(run_dir, record):
    """Append one record as a line; flushed to disk so a crash tears at most this line.
    A full disk raises DiskFullError (a torn line is dropped on the next read)."""
    path = Path(run_dir) / METRICS_NAME
    try:
        with open(path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path, run_dir) from None
        raise


def rewrite_metrics(run_dir, records):
    write_atomic(Path(run_dir) / METRICS_NAME, "".join(json.dumps(r) + "\n" for r in records))


# ------------------------------------------------------------------ housekeeping
def remove_orphan_temporaries(run_dir):
    """Delete temporaries that a killed process left behind; returns their names.
    Call only while holding the run's lock (no live writer can own them then)."""
    removed = []
    for pattern in TEMPORARY_PATTERNS:
        for path in Path(run_dir).glob(pattern):
            try:
                path.unlink()
                removed.append(path.name)
            except OSError:
                pass
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # alive, owned by someone else
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory: the file .lock, created with O_EXCL,
    holding the owner's pid, host and start time.

    A lock whose process is gone (same host, pid not alive) is stale: it is taken over
    with a note. A lock held by a live process, or by another host (which cannot be
    checked from here), refuses with a one-line message naming it.
    """

    def __init__(self, run_dir, warn=None):
        self.path = Path(run_dir) / LOCK_NAME
        self.warn = warn or (lambda message: print(message, file=sys.stderr))
        self.held = False

    def acquire(self):
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    time.sleep(0.1)  # vanished, or its owner is writing it: try again
                    continue
                if self._stale(holder):
                    self.warn(f"Taking over the stale lock of process {holder.get('pid')} "
                              f"(started {holder.get('started', '?')}), which is no longer "
                              "running.")
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                raise RunLockedError(
                    f"{self.path.parent} is in use by process {holder.get('pid')} on "
                    f"{holder.get('host', '?')} (started {holder.get('started', '?')}): wait "
                    "for it to finish or stop it (Ctrl-C or kill -TERM saves a checkpoint), "
                    "or choose another --out. If that process is gone, delete "
                    f"{self.path}.")
            except OSError as error:
                if is_disk_full(error):
                    raise DiskFullError(self.path) from None
                if is_not_writable(error):
                    raise NotWritableError(self.path, self.path.parent,
                                           error.strerror) from None
                raise
            try:
                with os.fdopen(descriptor, "w") as handle:
                    json.dump(owner, handle)
            except BaseException as error:
                try:              # no empty lock left behind to block the next run
                    self.path.unlink()
                except OSError:
                    pass
                if is_disk_full(error):
                    raise DiskFullError(self.path) from None
                raise
            self.held = True
            return self
        raise RunLockedError(f"Could not lock {self.path.parent}: {self.path} keeps "
                             "changing. Is another run starting there?")

    def _holder(self):
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            return holder if isinstance(holder, dict) else {}
        except json.JSONDecodeError:
            # A crash between create and write leaves it empty: only a fresh one may be
            # a live process about to write it.
            return {} if time.time() - self.path.stat().st_mtime > 10 else None

    @staticmethod
    def _stale(holder):
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return True
        if holder.get("host") != socket.gethostname():
            return False
        return pid != os.getpid() and not _process_alive(pid)

    def release(self):
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
