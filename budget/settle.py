"""Settling what a crash left behind: jobs still reserved in the ledger when the study was killed,
and runs recorded but never admitted. Runs when a study resumes, before anything new is reserved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from discover.budget.ledger import Ledger
from discover.knowledge_base.schema import Run
from discover.knowledge_base.store import KnowledgeBase


def settle_interrupted_jobs(
    ledger: Ledger, kb: KnowledgeBase, study_id: str, jobs_folder: Path, say: Callable[[str], None]
) -> None:
    """Charge the jobs a crash left reserved for the time they can be shown to have run (from their
    reservation to the last file they wrote under `jobs_folder`), and mark their runs failed, as well
    as runs recorded but never admitted. Nothing is charged twice: a settled job leaves the ledger's
    outstanding set. Reads the jobs' file times, so it must run before their folders are cleaned."""
    reserved_at = {entry.job_id: entry.at for entry in ledger.store.entries() if entry.op == "reserve"}
    for job_id in ledger.outstanding():
        files = [path for path in jobs_folder.glob(f"{job_id}*/**/*") if path.is_file()]
        last = max((path.stat().st_mtime for path in files), default=reserved_at[job_id])
        seconds = max(0.0, last - reserved_at[job_id])
        ledger.charge(job_id, seconds, devices=1)
        if kb.get(Run, job_id) is not None:
            reason = "interrupted: the study stopped while this run was in progress"
            kb.update_run(job_id, status="failed", failure_reason=reason, cost_device_seconds=seconds)
        say(f"settled interrupted job {job_id}: charged {seconds:.1f} device-seconds")
    for _, run in kb.study_runs(study_id):
        if run.status == "running":  # recorded, but killed before its job was admitted: nothing ran
            reason = "interrupted: the study stopped before this run started"
            kb.update_run(run.id, status="failed", failure_reason=reason)
