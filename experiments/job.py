"""The program a sandbox runs: one action on one candidate; files in, files out.

    python -m discover.experiments.job JOB_DIR OUT_DIR

JOB_DIR (read-only) holds `job.json`, `candidate.py` and `inputs.pt` (and, for predict,
`weights.pt`). OUT_DIR is the only writable folder; the orchestrator reads it back with size limits
and validates every file.

    check     probes; logits for the audit's inputs  -> verdict.json, logits.pt
    fit       train, no held-out data                -> metrics.jsonl, fit.json, weights.pt
    predict   fresh process: weights, held-out inputs -> logits.pt

No job computes a score: `predict` sees held-out inputs but never their targets, and the trusted
orchestrator turns the logits into metrics (`discover.sandbox.runner`). Training and prediction run
in separate processes so that nothing a candidate does while training survives into prediction.
A failure the candidate caused is written to `error.json` with a one-line reason. Every action
verifies the integrity guard before it writes, and the process ends with `os._exit` so that nothing
the candidate left behind runs afterwards. The orchestrator still treats the files as claims: it
counts parameters from `weights.pt` and times the job itself.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path

import torch

import discover.experiments.files as files
import discover.experiments.harness as harness
import discover.experiments.probes as probes
import discover.experiments.tasks.base as task_base
from discover.experiments.contract import CandidateError, describe_error, load_mixer_class
from discover.experiments.cpu_share import CpuShare
from discover.experiments.files import write_json_atomic
from discover.experiments.harness import fit, pick_device
from discover.experiments.integrity import IntegrityError, IntegrityGuard
from discover.experiments.jobspec import JobError, JobFile
from discover.experiments.probes import load_and_check
from discover.experiments.tasks import get_task
from discover.experiments.tasks.base import predict


def run(job_dir: Path, out_dir: Path) -> None:
    job = JobFile.model_validate_json((job_dir / "job.json").read_text())
    task = get_task(job.task)
    cfg = task.config(job.settings)
    candidate = job_dir / "candidate.py"
    device = pick_device(job.device)
    if job.action == "fit":
        # torch.optim imports dynamo, which rewraps torch.manual_seed: let it happen before the
        # snapshot, not after (check and predict build no optimizer and skip the 1 s import).
        dynamo = importlib.import_module("torch._dynamo")
        if cfg.compile:  # the first compiled call patches nn.Module's constructor: do it now
            dynamo.mutation_guard.install_generation_tagging_init()
    guard = IntegrityGuard(
        {
            "harness": harness,
            "probes": probes,
            "tasks.base": task_base,
            "files": files,
            "job": sys.modules[__name__],
        }
    )  # taken before the candidate is imported

    if job.action == "check":
        if device.type == "cpu":
            CpuShare().adjust()  # the probes' threads, sized to the cores other work leaves
        verdict, mixer_class = load_and_check(candidate, task, cfg)
        logits = None
        if verdict.passed and mixer_class is not None:  # for the orchestrator's causality audit
            torch.manual_seed(job.seed)
            model = task.build_model(mixer_class, cfg).to(device)
            logits = predict(
                model, torch.load(job_dir / "inputs.pt", weights_only=True), cfg.batch_size, device
            )
        guard.verify()
        write_json_atomic(out_dir / "verdict.json", verdict.model_dump())
        if logits is not None:
            torch.save(logits, out_dir / "logits.pt")
    elif job.action == "fit":
        model, summary = fit(candidate, task, cfg, job.seed, device, out_dir)
        guard.verify()
        torch.save(model.state_dict(), out_dir / "weights.pt")
        write_json_atomic(out_dir / "fit.json", summary.model_dump())
    else:
        model = task.build_model(load_mixer_class(candidate), cfg).to(device)
        # weights_only: these files came out of a sandbox or the orchestrator and hold only tensors.
        model.load_state_dict(torch.load(job_dir / "weights.pt", map_location=device, weights_only=True))
        inputs = torch.load(job_dir / "inputs.pt", weights_only=True)
        logits = task.outputs(model, inputs, cfg, device)
        guard.verify()
        torch.save(logits, out_dir / "logits.pt")


def main(argv: list[str]) -> int:
    job_dir, out_dir = Path(argv[1]), Path(argv[2])
    try:
        run(job_dir, out_dir)
    except (CandidateError, IntegrityError) as exc:
        write_json_atomic(out_dir / "error.json", JobError(reason=str(exc)).model_dump())
        return 3
    except Exception as exc:
        reason = f"candidate raised during the job: {describe_error(exc)}"
        write_json_atomic(out_dir / "error.json", JobError(reason=reason).model_dump())
        traceback.print_exc()  # the full story goes to the job's log
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    # Leave at once: exit handlers and threads the candidate registered never run after the
    # outputs are written, so they cannot rewrite them.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
