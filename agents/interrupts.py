"""Stopping a study by a signal, and waiting in a way that lets the stop be heard.

Ctrl-C (SIGINT), SIGTERM (what `timeout`, systemd, Kubernetes and Slurm send) and SIGHUP (a closed
terminal) all mean the same: the first drains, the second stops at once. A drained Ctrl-C still
exits with status 130, as an interrupted command does; a drained SIGTERM or SIGHUP is a clean stop
a scheduler asked for, status 0.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

from discover.sandbox import quota
from discover.sandbox.base import Backend

Say = Callable[[str], None]
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class interrupts:
    """A signal once: start no new job; the running jobs finish and their experiments pause at the
    next step. Twice: stop now (the running jobs are killed and reaped). Either way --resume
    continues every experiment from its last finished step."""

    def __init__(
        self, stopping: threading.Event, say: Say, backend: Backend, study_id: str, jobs_dir: Path
    ) -> None:
        self.stopping, self.say, self.backend, self.study_id = stopping, say, backend, study_id
        self.jobs_dir = jobs_dir
        self.previous: dict[int, Any] = {}
        self.received: int | None = None  # the first signal, if any

    def __enter__(self) -> interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = {signum: signal.signal(signum, self.handle) for signum in SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            # After a drained stop only the leaderboard and the report are left to write, and a
            # second signal must still stop at once, not meet the default handler (a traceback or
            # death by the signal). Nothing runs any more, so there is nothing to kill.
            signal.signal(signum, stop_at_once if self.received is not None else handler)

    def handle(self, signum: int, frame: object) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            self.received = signum
            name = signal.Signals(signum).name
            self.say(f"interrupted: finishing the running jobs ({name}; a second signal stops now)")
            return
        self.say("stopping now; continue later with `discover run --resume`")
        self.backend.kill_all()
        self.backend.reap(self.study_id)
        quota.release_leftovers(self.jobs_dir)  # the killed jobs' output mounts
        os._exit(130)


def stop_at_once(signum: int, frame: object) -> None:
    os._exit(130)


def wait_interruptibly(futures: list[Future]) -> None:
    """Wait for the futures, raising the first error. Python runs signal handlers in the main thread
    only, and a Ctrl-C the kernel hands to another thread does not wake a blocked future.result():
    short timed waits let the handler run within a fraction of a second."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=0.2)
    for future in futures:
        future.result()
