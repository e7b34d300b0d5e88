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
