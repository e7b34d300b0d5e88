"""--threads auto gives BLAS the cores other processes leave free (numpyvae/threads.py),
counted from the machine's and this process's CPU time; --threads N keeps N."""
import pytest

from numpyvae import threads


class FakeMachine:
    """A clock, the machine's busy CPU seconds and this process's, moved by hand."""

    def __init__(self):
        self.wall = self.busy = self.own = 0.0

    def run(self, seconds, ours, others):
        self.wall += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds


@pytest.fixture
def machine(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 2)
    for name in threads.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    applied = []
    monkeypatch.setattr(threads, "threadpool_limits", lambda limits, user_api: applied.append(limits))
    fake = FakeMachine()
    chooser = threads.ThreadChooser(clock=lambda: fake.wall, busy=lambda: fake.busy,
                                    own=lambda: fake.own)
    return fake, chooser, applied


def test_auto_follows_a_competing_process(machine):
    fake, chooser, applied = machine
    assert chooser.limit == 2 and applied == [2]      # a quiet machine: both cores
    chooser.recheck()                                  # the first count's start
    fake.run(threads.RECHECK_SECONDS, ours=1.33, others=0.67)   # a rival takes its share
    assert chooser.recheck() == 1
    fake.run(threads.RECHECK_SECONDS, ours=1.0, others=1.0)     # it keeps its core
    assert chooser.recheck() == 1
    fake.run(threads.RECHECK_SECONDS, ours=1.0, others=0.05)    # it ended
    assert chooser.recheck() == 2
    assert applied == [2, 1, 2] and chooser.changes == 2


def test_counts_only_after_the_recheck_interval(machine):
    fake, chooser, applied = machine
    chooser.recheck()
    fake.run(threads.RECHECK_SECONDS / 3, ours=1.0, others=1.0)
    assert chooser.recheck() == 2 and applied == [2]


def test_fixed_threads_never_change(monkeypatch, machine):
    fake, _, applied = machine
    chooser = threads.ThreadChooser(2, clock=lambda: fake.wall, busy=lambda: fake.busy,
                                    own=lambda: fake.own)
    chooser.recheck()
    fake.run(10, ours=1.0, others=1.0)
    assert chooser.recheck() == 2 and chooser.changes == 0


def test_auto_stays_within_the_users_environment(monkeypatch, machine):
    fake, _, applied = machine
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    chooser = threads.ThreadChooser(clock=lambda: fake.wall, busy=lambda: fake.busy,
                                    own=lambda: fake.own)
    chooser.recheck()
    fake.run(10, ours=1.0, others=0.0)
    assert chooser.recheck() == 1


def test_the_machine_counters_are_read():
    busy = threads._busy_seconds()
    if busy is None:
        pytest.skip("no /proc/stat here")
    assert busy > 0 and threads.cores() >= 1


@pytest.mark.parametrize("faster", [1, 2])
def test_auto_times_both_counts_and_keeps_the_faster(machine, faster):
    """On a free machine auto times a window at both cores and one at a single thread
    (a small model's step can be faster on one), keeps the faster, and times them again
    after TRIAL_SECONDS."""
    fake, chooser, applied = machine
    rates = {1: 100.0, 2: 100.0}
    rates[faster] = 150.0
    done = 0.0

    def window(seconds=threads.RECHECK_SECONDS):
        nonlocal done
        fake.run(seconds, ours=chooser.limit, others=0.0)
        done += rates[chooser.limit] * seconds
        return chooser.recheck(done)

    chooser.recheck(done)
    assert window() == 2                 # a trial starts at the free count
    assert window() == 1                 # the free count timed; now one thread
    assert window() == faster            # both timed: the faster kept
    assert window() == faster and window() == faster
    assert window(threads.TRIAL_SECONDS) == 2    # time to try both again
    assert applied == [2, 1, 2]


def test_a_rival_during_a_trial_takes_its_core_at_once(machine):
    fake, chooser, applied = machine
    chooser.recheck(0)
    fake.run(threads.RECHECK_SECONDS, ours=2.0, others=0.0)
    assert chooser.recheck(300) == 2
    fake.run(threads.RECHECK_SECONDS, ours=1.0, others=1.0)     # a rival holds a core
    assert chooser.recheck(600) == 1
    fake.run(threads.RECHECK_SECONDS, ours=1.0, others=1.0)
    assert chooser.recheck(900) == 1 and chooser._trial is None


OPENBLAS = dict(user_api="blas", internal_api="openblas", version="0.3.31", num_threads=2)


@pytest.mark.parametrize("kernels, forced, avx512, says", [
    ("Haswell", "Haswell", True, True),       # the environment holds AVX-512 back
    ("Haswell", None, True, False),           # OpenBLAS's own choice: nothing to undo
    ("SkylakeX", "SkylakeX", True, False),    # AVX-512 kernels already
    ("Haswell", "Haswell", False, False),     # an AVX2 CPU: Haswell is its best
])
def test_a_notice_only_where_the_environment_holds_avx512_back(kernels, forced, avx512, says):
    info = [dict(OPENBLAS, architecture=kernels)]
    environ = {} if forced is None else {"OPENBLAS_CORETYPE": forced}
    notice = threads.kernel_notice(info, environ, avx512=avx512)
    assert (notice is not None) == says
    if says:
        assert "OPENBLAS_CORETYPE=Haswell" in notice and "\n" not in notice
    described = threads.blas_description(info, environ)
    assert described.startswith(f"openblas 0.3.31 ({kernels} kernels")
    assert ("as OPENBLAS_CORETYPE sets" in described) == (forced is not None)


def test_another_blas_gets_no_notice():
    info = [dict(user_api="blas", internal_api="mkl", version="2024.2", num_threads=2)]
    assert threads.kernel_notice(info, {"OPENBLAS_CORETYPE": "Haswell"}, avx512=True) is None
    assert threads.blas_description(info, {}) == "mkl 2024.2"
    assert threads.blas_description([], {}) == "unknown"


def test_on_the_gpu_backend_the_run_names_cublas_and_says_nothing_of_openblas(monkeypatch):
    monkeypatch.setattr(threads.backend, "backend_name", lambda: "cupy")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert threads.blas_description() == "cupy (the GPU's cuBLAS)"
    assert threads.kernel_notice(avx512=True) is None
