"""How many BLAS threads a run uses, chosen against what else the machine is running.

Two BLAS threads on two cores make a step faster on a quiet machine, and several times
slower when another CPU-bound process holds one core: the two threads then wait for
each other at every product. ``--threads auto`` (the default) counts, every few
seconds, the cores that other processes keep busy (from /proc/stat, less this
process's own CPU time) and gives BLAS the cores that are left, at least one. Where
more than one is left, a second thread is not always faster (a small model's products
are too short to split well: Frey's step is faster on one), so auto then times one
window of training at the free count and one at a single thread, keeps the faster, and
times them again every TRIAL_SECONDS or when the free count changes. A fixed
``--threads N`` keeps N throughout.

The count is set with threadpoolctl, a small library kept for exactly this job (each
BLAS build has its own call for it). Reproducibility: OpenBLAS splits a product
differently for another thread count, so the last bits of a product depend on it. A
run resumed under another load than it started with agrees with an uninterrupted one
to float32 rounding, not bit for bit; ``--threads N`` makes it bit for bit.
"""
import os
import time

from . import backend

try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:                      # an install without it: the BLAS default stays
    threadpool_info = threadpool_limits = None

RECHECK_SECONDS = 3.0
TRIAL_SECONDS = 60.0     # how long auto keeps the faster count before timing both again
_state = {"workers": 1, "pool": None}   # what the training command chose, for optim.py
ENVIRONMENT = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def workers():
    """Threads NumPy code outside the BLAS may use (the optimizer's update): the BLAS
    count a ThreadChooser set last, else 1 (a library user's process is left alone)."""
    return _state["workers"]


def pool():
    """The worker threads element-wise work shares beside the calling one (started on
    first use)."""
    if _state["pool"] is None:
        from concurrent.futures import ThreadPoolExecutor
        _state["pool"] = ThreadPoolExecutor(max_workers=max(1, cores() - 1),
                                            thread_name_prefix="numpyvae")
    return _state["pool"]


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def ceiling():
    """The most threads auto may use: the cores, or fewer where the user's environment
    (OMP_NUM_THREADS and kin) asks for fewer."""
    limit = cores()
    for name in ENVIRONMENT:
        try:
            limit = min(limit, max(1, int(os.environ[name])))
        except (KeyError, ValueError):
            pass
    return limit


def blas_threads():
    """The BLAS thread count in force now (None without threadpoolctl)."""
    if threadpool_info is None:
        return None
    counts = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return max(counts) if counts else None


# OpenBLAS's kernel families that use AVX-512 (its DYNAMIC_ARCH names, as threadpoolctl
# reports them); Haswell and Zen are its AVX2 kernels.
AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


def cpu_has_avx512():
    """Whether this CPU runs the AVX-512 subsets (F, CD, BW, DQ, VL) that OpenBLAS's
    SkylakeX kernels use, from NumPy's own dispatch table (None if it cannot say)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:                                              # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return None
    return __cpu_features__.get("AVX512_SKX")


def blas_pool(info=None):
    """threadpoolctl's record of the BLAS NumPy calls (None without threadpoolctl)."""
    if info is None and threadpool_info is not None:
        info = threadpool_info()
    pools = [pool for pool in info or () if pool.get("user_api") == "blas"]
    return pools[0] if pools else None


def _on_gpu(info):
    """Whether this process's products run on the GPU (the cupy backend, asked only when
    no BLAS record is handed in)."""
    return info is None and backend.backend_name() == "cupy"


def blas_description(info=None, environ=None):
    """The BLAS the array backend's products run on, in words, for logs and run records:
    library, version, kernels, and the variable that chose the kernels where one did
    (e.g. "openblas 0.3.31 (Haswell kernels, as OPENBLAS_CORETYPE sets)")."""
    if _on_gpu(info):
        return "cupy (the GPU's cuBLAS)"
    pool = blas_pool(info)
    if pool is None:
        return "unknown (threadpoolctl not installed)" if threadpool_info is None else "unknown"
    text = f"{pool.get('internal_api', 'blas')} {pool.get('version') or ''}".strip()
    kernels = pool.get("architecture")
    if kernels:
        forced = (environ if environ is not None else os.environ).get("OPENBLAS_CORETYPE")
        text += f" ({kernels} kernels" + (", as OPENBLAS_CORETYPE sets" if forced else "") + ")"
    return text


def kernel_notice(info=None, environ=None, avx512=None):
    """One line for a user whose environment holds OpenBLAS to AVX2 kernels on a CPU with
    AVX-512 (OPENBLAS_CORETYPE=Haswell, say), which makes every matrix product slower:
    on a 2-core AMD EPYC (Zen 5) its SkylakeX kernels ran the models' products 1.6-2.0x
    faster on one thread (README, "Speed"). None where there is nothing to say."""
    environ = os.environ if environ is None else environ
    forced = environ.get("OPENBLAS_CORETYPE")
    if not forced or _on_gpu(info):
        return None
    pool = blas_pool(info)
    if pool is None or pool.get("internal_api") != "openblas":
        return None
    kernels = str(pool.get("architecture") or "")
    if kernels.lower() in AVX512_KERNELS or not (cpu_has_avx512() if avx512 is None else avx512):
        return None
    return (f"note: OpenBLAS runs its {kernels} kernels because OPENBLAS_CORETYPE={forced} is "
            f"set; this CPU has AVX-512, where OpenBLAS's own choice multiplies matrices up to "
            f"about twice as fast: unset OPENBLAS_CORETYPE for speed (the last bits of results "
            f"then differ from runs made under {kernels}).")


def _busy_seconds():
    """CPU seconds all processes have spent busy since boot (None off Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(value) for value in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)          # idle + iowait
    busy = sum(ticks[:8]) - idle                                    # without guest time
    return busy / os.sysconf("SC_CLK_TCK")


class ThreadChooser:
    """Keeps BLAS at ``fixed`` threads, or (fixed None) at the cores other processes
    leave free, re-counted every RECHECK_SECONDS by ``recheck(done)``; with more than
    one free and ``done`` (the work done so far, e.g. samples seen) given, at the faster
    of that count and one thread, as timed on the windows between rechecks."""

    def __init__(self, fixed=None, clock=time.monotonic, busy=_busy_seconds,
                 own=time.process_time):
        self.fixed, self.clock, self.busy, self.own = fixed, clock, busy, own
        self.limit = None
        self.changes = 0
        self._mark = self._done = self._trial = None
        self.apply(fixed if fixed is not None else ceiling())

    def apply(self, count):
        count = max(1, int(count))
        if count != self.limit and threadpool_limits is not None:
            threadpool_limits(limits=count, user_api="blas")
            self.changes += self.limit is not None
        self.limit = _state["workers"] = count
        return count

    def _sample(self):
        return self.clock(), self.busy(), self.own()

    def others_busy(self, start, end):
        """Cores other processes kept busy between two samples (wall, busy, own)."""
        wall = end[0] - start[0]
        if wall <= 0 or start[1] is None or end[1] is None:
            return None
        return max(0.0, ((end[1] - start[1]) - (end[2] - start[2])) / wall)

    def recheck(self, done=None):
        """Count again if RECHECK_SECONDS have passed; returns the thread count.
        ``done``: the work done so far (any count that grows with it), which times the
        window since the last recheck; without it auto takes every free core."""
        if self.fixed is not None:
            return self.limit
        now = self._sample()
        if self._mark is None:
            self._mark, self._done = now, done
            return self.limit
        if now[0] - self._mark[0] < RECHECK_SECONDS:
            return self.limit
        others = self.others_busy(self._mark, now)
        rate = (None if done is None or self._done is None
                else (done - self._done) / (now[0] - self._mark[0]))
        self._mark, self._done = now, done
        if others is None:
            return self.limit
        free = min(ceiling(), max(1, round(cores() - others)))
        if free == 1 or rate is None:
            self._trial = None
            return self.apply(free)
        return self.apply(self._timed_choice(free, rate, now[0]))

    def _timed_choice(self, free, rate, now):
        """With ``free`` > 1 cores free: a window at ``free`` threads, then one at a single
        thread (``rate`` is the window just ended, run at self.limit), then the faster
        until TRIAL_SECONDS pass or ``free`` changes."""
        trial = self._trial
        if (trial is None or trial["free"] != free
                or (trial["choice"] is not None and now - trial["at"] >= TRIAL_SECONDS)):
            self._trial = dict(free=free, rates={}, choice=None, at=now)
            return free
        if trial["choice"] is None:
            trial["rates"][self.limit] = rate
            untried = [count for count in (free, 1) if count not in trial["rates"]]
            if untried:
                return untried[0]
            trial["choice"] = max(trial["rates"], key=trial["rates"].get)
            trial["at"] = now
        return trial["choice"]
