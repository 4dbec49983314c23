"""What `discover run` shows while it works. On a terminal: a live panel (budget used and left,
experiments by state, the best design so far, LLM spend, an ETA) under the study's log lines. Else
(a pipe, a log file): the log lines alone, one per event.

The panel reads the study folder, like `discover status`, so it shows what the knowledge base
records rather than what the runner believes; log lines are printed as text, never as markup,
since they quote LLM-written names."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from discover.agents.checkpoints import describe_outcomes
from discover.agents.record import StudyError
from discover.agents.status import StudyStatus, study_status

REFRESH_S = 2.0  # the panel queries the database at most this often


class Progress:
    """A context manager; `say` prints one log line (above the panel on a terminal)."""

    def __init__(self, folder: Path, console: Console) -> None:
        self.folder, self.console = folder, console
        self.live: Live | None = None
        self.started = time.monotonic()
        self.spent_at_start: float | None = None
        self.last_read = -REFRESH_S
        self.panel: RenderableType = Text("starting the study…", style="dim")

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(console=self.console, get_renderable=self.render, refresh_per_second=1)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def say(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False)

    def render(self) -> RenderableType:
        now = time.monotonic()
        if now - self.last_read >= REFRESH_S:
            self.last_read = now
            try:
                status = study_status(self.folder)
                self.panel = status_panel(status, self.eta(status))
            except (StudyError, OSError):
                pass  # the study's files do not exist yet: keep the last panel
            except Exception as exc:  # a database busy with a schema change, say: the next refresh retries
                self.panel = Text(f"(status unavailable: {type(exc).__name__})", style="dim")
        return self.panel

    def eta(self, status: StudyStatus) -> float | None:
        """Seconds until the budget is spent at this run's rate of spending so far."""
        if self.spent_at_start is None:
            self.spent_at_start = status.spent_s
            return None
        elapsed = time.monotonic() - self.started
        rate = (status.spent_s - self.spent_at_start) / elapsed if elapsed > 0 else 0.0
        if status.left_s is None or rate <= 0:
            return None
        return max(0.0, status.left_s) / rate


def status_panel(status: StudyStatus, eta_s: float | None) -> RenderableType:
    budget = status.budget_s or 0.0
    left = max(0.0, status.left_s or 0.0)  # the ledger's own `left`: reservations held are not left
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row(
        "budget",
        f"{status.spent_s / 60:.1f} of {budget / 60:.1f} device-min spent, {left / 60:.1f} left"
        + (f", {status.reserved_s / 60:.1f} reserved" if status.reserved_s else "")
        + (f"; ETA {format_duration(eta_s)}" if eta_s is not None else ""),
    )
    counts = status.designs
    grid.add_row(
        "experiments",
        f"{len(status.running)} running, {counts.get('not trained', 0)} in probes, "
        f"{counts.get('succeeded', 0)} done, {counts.get('failed', 0) + counts.get('rejected', 0)} failed",
    )
    grid.add_row("ended", describe_outcomes(status.outcomes))
    proposed = [row for row in status.leaderboard if row["origin"] != "baseline"]
    if proposed and proposed[0]["fitness"] is not None:
        best = proposed[0]
        score = f"fitness {best['fitness']:.3f}, {best['metric']} {best['screen_value']:.4f}"
        grid.add_row("best", f"{escape(best['name'])} ({score})")
    if status.running:
        grid.add_row("running", escape(", ".join(status.running)))
    grid.add_row("LLM", f"${status.llm_usd:.2f} over {status.llm_requests} requests")
    return Group(Text(f"── {status.name} on {status.task} ──", style="bold cyan"), grid)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
