"""Sharing a CPU host with other work: a job uses fewer math threads while other threads are
runnable, and its full count again once they are gone. Every job does: training, prediction and
the probes alike (a prediction job that spun against another job ran 15 times slower).

Math libraries' threads spin while they wait for each other. A job sized for the whole host that
shares it with another such job loses most of its time to that spinning (two 2-thread jobs on 2
cores each ran at 2% of their solo speed; benchmarks/cpu_sharing.py). Waiting passively instead
costs a third of the speed of a job alone. So the job keeps spinning threads and watches the
host's runnable-thread count (/proc/loadavg, host-wide even inside a container): when other
threads want the cores, it drops to the cores they leave free, at least one.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

CHECK_EVERY_S = 1.0
SAMPLES = 3  # a median of a few reads, so one short-lived process does not count


def runnable_threads() -> int | None:
    """Threads on the host that are running or ready to run now; None where /proc cannot tell."""
    counts = []
    for _ in range(SAMPLES):
        try:
            with open("/proc/loadavg") as stream:
                counts.append(int(stream.read().split()[3].partition("/")[0]))
        except (OSError, ValueError, IndexError):
            return None
        time.sleep(0.002)
    return int(statistics.median(counts))


class CpuShare:
    """Call `adjust()` once per training step or prediction batch; it looks at the host at once,
    then at most once a second."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or torch.get_num_threads()  # the most the job may use
        self.cores = len(os.sched_getaffinity(0))
        self.checked = time.monotonic() - CHECK_EVERY_S  # the first adjust() looks at once

    def adjust(self) -> None:
        now = time.monotonic()
        if now - self.checked < CHECK_EVERY_S or self.threads == 1:
            return
        self.checked = now
        runnable = runnable_threads()
        if runnable is None:
            return
        current = torch.get_num_threads()
        others = max(0, runnable - current)
        wanted = max(1, min(self.threads, self.cores - others))
        if wanted != current:
            torch.set_num_threads(wanted)
