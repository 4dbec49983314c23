"""One prepared check of discover's GPU path, for a GPU machine lent for a few minutes.

    python -m benchmarks.gpu_check                 # on a CUDA GPU: writes RESULTS.md's GPU section
    python -m benchmarks.gpu_check --cpu --out D   # the same code paths at toy shapes (CI runs this)

Sections, each written to OUT/gpu_check.{md,json} as soon as it ends, so a check cut short by its
machine still reports what it measured; a section that fails records its error and the next runs:

1. harness   every built-in baseline at the exploration shape (lm task, 8 layers, width 256,
             8 heads, context 2048, bf16 autocast), eager: tokens/s, against softmax attention,
             peak memory, and the loss falling over a few hundred steps (it learns).
2. sandbox   a check job and a full training run (fit, predict, audit) through the process
             sandbox on slot cuda:0: the pinning and the per-job overhead.
3. workers   two sandboxed runs at once on the one GPU, against one alone.
4. study     `discover init` and `discover run` with a short budget on the GPU.
5. compile   the harness with torch.compile, each baseline in a child process with a time limit,
             as long as the time allowance lasts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.results import machine, write_section
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import fit
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import get_task
from discover.sandbox.base import Limits
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import vet

SHAPES = {  # lm task settings; "gpu" is the ASI-Arch exploration shape
    "gpu": {"n_layers": 8, "d_model": 256, "num_heads": 8, "seq_len": 2048, "batch_size": 16},
    "cpu": {"n_layers": 2, "d_model": 64, "num_heads": 4, "seq_len": 128, "batch_size": 4},
}
STEPS = {"gpu": 200, "cpu": 40}  # eager runs: enough for the loss to fall well below its start
COMPILE_STEPS = {"gpu": 60, "cpu": 8}
STUDY_BUDGET = {"gpu": "1m", "cpu": "1m"}
# CPU inductor compiles for tens of seconds per model: CI compiles one, the GPU check all it can.
COMPILED = {"gpu": None, "cpu": ("linear_attention",)}
# Cheapest and most telling first, so that a check cut short still has the key rows.
ORDER = ("softmax_attention", "deltanet", "gated_deltanet", "linear_attention", "retention", "gla", "mamba2")
LEARNS = 0.8  # a run learns when its last logged loss is below this share of its first


def lm_settings(mode: str, steps: int, compile: bool = False) -> dict:
    log_every = max(1, steps // 5)
    warmup = max(1, steps // 10)
    return {**SHAPES[mode], "steps": steps, "log_every": log_every, "warmup_steps": warmup,
            "eval_windows": 16, "compile": compile}  # fmt: skip


def baselines_in_order() -> list[str]:
    names = builtin_baselines()
    return [n for n in ORDER if n in names] + sorted(set(names) - set(ORDER))


def measure(name: str, mode: str, compile: bool) -> dict:
    """Fit one baseline in this process: throughput, memory and the loss curve."""
    task = get_task("lm")
    steps = COMPILE_STEPS[mode] if compile else STEPS[mode]
    cfg = task.config(lm_settings(mode, steps, compile))
    device = torch.device("cuda" if mode == "gpu" else "cpu")
    losses: list[float] = []
    started = time.perf_counter()
    _, summary = fit(
        builtin_baselines()[name], task, cfg, 0, device, on_log=lambda log: losses.append(log.train_loss)
    )
    return {
        "baseline": name,
        "compile": compile,
        "tokens_per_s": summary.tokens_per_s,
        "peak_memory_mb": summary.peak_memory_mb,
        "params": summary.params,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "learns": losses[-1] < LEARNS * losses[0],
        "steps": steps,
        "wall_s": time.perf_counter() - started,
    }


def measure_in_child(name: str, mode: str, timeout_s: float) -> dict:
    """`measure` with compile in a child process, so that a compile that outlasts the allowance
    is ended instead of ending the check."""
    command = [sys.executable, "-m", "benchmarks.gpu_check", "--measure-compiled", name]
    command += ["--cpu"] if mode == "cpu" else []
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"baseline": name, "compile": True, "error": f"not done within {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"baseline": name, "compile": True, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


class Check:
    """Runs the sections under one deadline and writes what they found after each."""

    def __init__(self, mode: str, out: Path, deadline_s: float) -> None:
        self.mode, self.out = mode, out
        self.deadline = time.monotonic() + deadline_s
        self.found: dict[str, object] = {"mode": mode, "machine": machine()}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def section(self, name: str, run: Callable[[], object], needs_s: float) -> None:
        if self.left() < needs_s:
            self.found[name] = {
                "skipped": f"{self.left():.0f} s left of the allowance, {needs_s:.0f} s needed"
            }
        else:
            started = time.monotonic()
            try:
                self.found[name] = run()
            except Exception as exc:  # one broken section must not cost the others their numbers
                traceback.print_exc()
                self.found[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"[gpu_check] {name}: {time.monotonic() - started:.0f} s", flush=True)
        self.write()

    def write(self) -> None:
        (self.out / "gpu_check.json").write_text(json.dumps(self.found, indent=2, default=str))
        (self.out / "gpu_check.md").write_text(report(self.found))


def harness_rows(mode: str, check: Check) -> list[dict]:
    rows = []
    for name in baselines_in_order():
        if check.left() < 20:
            rows.append({"baseline": name, "compile": False, "error": "skipped: time allowance spent"})
            continue
        rows.append(measure(name, mode, compile=False))
        print(f"[gpu_check] {rows[-1]}", flush=True)
        if mode == "gpu":
            torch.cuda.empty_cache()
    return rows


def compile_rows(mode: str, check: Check) -> list[dict]:
    rows = []
    for name in COMPILED[mode] or baselines_in_order():
        budget = min(check.left() - 5, 150 if mode == "gpu" else 240)
        if budget < 30:
            rows.append({"baseline": name, "compile": True, "error": "skipped: time allowance spent"})
            continue
        rows.append(measure_in_child(name, mode, budget))
        print(f"[gpu_check] {rows[-1]}", flush=True)
    return rows


def slot(mode: str) -> str:
    return "cuda:0" if mode == "gpu" else "cpu:0"


def sandbox_run(mode: str, workdir: Path) -> dict:
    """A check job, then fit + predict + audit through the process sandbox on the GPU slot."""
    sandbox = Sandbox(ProcessBackend(), workdir, Limits(timeout_s=300, memory_mb=32_768))
    candidate = vet(builtin_baselines()["deltanet"], trusted=True)
    spec = RunSpec.resolve("lm", lm_settings(mode, STEPS[mode]))
    started = time.perf_counter()
    verdict = sandbox.check(candidate, spec)
    check_s = time.perf_counter() - started
    started = time.perf_counter()
    result = sandbox.train(candidate, spec, slot(mode))
    return {
        "check_passed": verdict.passed,
        "check_s": check_s,
        "train_s": time.perf_counter() - started,
        "fit_s": result.wall_time_s,
        "device": result.device,
        "value": result.value,
        "metric": result.metric,
        "tokens_per_s": result.tokens_per_s,  # over the whole fit job, start-up included
    }


def two_workers(mode: str, workdir: Path, solo_tokens_per_s: float | None) -> dict:
    """Two sandboxed runs at once on the one device: what each gets against one alone (the
    sandbox section's run, the same job)."""
    sandbox = Sandbox(ProcessBackend(), workdir, Limits(timeout_s=300, memory_mb=32_768))
    candidate = vet(builtin_baselines()["deltanet"], trusted=True)
    spec = RunSpec.resolve("lm", lm_settings(mode, STEPS[mode]))
    results: list[float] = []

    def one(seed: int) -> None:
        results.append(sandbox.train(candidate, spec.with_seed(seed), slot(mode)).tokens_per_s)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "each_tokens_per_s": results,
        "total_tokens_per_s": sum(results),
        "solo_tokens_per_s": solo_tokens_per_s,
    }


def short_study(mode: str, folder: Path) -> dict:
    """A new user's first study, on this device: `discover init`, then `discover run`."""
    cli = [sys.executable, "-m", "discover.cli"]
    subprocess.run([*cli, "init", str(folder)], check=True, capture_output=True, text=True)
    started = time.perf_counter()
    run = subprocess.run(
        [*cli, "run", "-C", str(folder), "--budget", STUDY_BUDGET[mode], "--sandbox", "process"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    wall_s = time.perf_counter() - started
    status = subprocess.run([*cli, "status", "-C", str(folder), "--json"], capture_output=True, text=True)
    found = {"exit_code": run.returncode, "wall_s": wall_s, "output_tail": (run.stdout + run.stderr)[-1500:]}
    if status.returncode == 0:
        state = json.loads(status.stdout)
        found |= {key: state.get(key) for key in ("spent_s", "experiments", "designs", "claims")}
    from benchmarks.study_overhead import device_time

    split = device_time(folder)
    found["charged_s"] = split.charged
    found["outside_steps_share"] = split.outside_share if split.charged else None
    return found


def report(found: dict) -> str:
    """The markdown section: one table per section, errors and skips said as such."""
    shape = ", ".join(f"{k} {v}" for k, v in SHAPES[found["mode"]].items())
    lines = [
        "## GPU check (`benchmarks/gpu_check.py`)",
        "",
        f"Machine: {found['machine']}. Mode: {found['mode']}. lm task at {shape}; "
        f"bf16 autocast on CUDA. Eager runs {STEPS[found['mode']]} steps, compiled runs "
        f"{COMPILE_STEPS[found['mode']]}; tokens/s are after the first logging interval "
        "(compilation and warm-up excluded). 'learns': the last logged loss is below "
        f"{LEARNS:.0%} of the first.",
        "",
    ]
    rows = [r for key in ("harness", "compile") if isinstance(found.get(key), list) for r in found[key]]
    if rows:
        lines += [TABLE_HEADER, "|---|---|---|---|---|---|---|---|"]
    attention = {r["compile"]: r.get("tokens_per_s") for r in rows if r["baseline"] == "softmax_attention"}
    lines += [table_row(r, attention.get(r["compile"])) for r in rows]
    for key in ("harness", "compile", "sandbox", "workers", "study"):
        value = found.get(key)
        if isinstance(value, dict):
            lines += [
                "",
                f"**{key}**: "
                + ", ".join(f"{k}: {short(v)}" for k, v in value.items() if k != "output_tail"),
            ]
    return "\n".join(lines) + "\n"


TABLE_HEADER = (
    "| baseline | compile | tokens/s | vs attention | GPU-h per 1B tokens | peak memory "
    "| loss first → last | learns |"
)


def table_row(r: dict, attention_tokens_per_s: float | None) -> str:
    compiled = "yes" if r["compile"] else "no"
    if "error" in r:
        return f"| {r['baseline']} | {compiled} | {r['error']} |  |  |  |  |  |"
    ratio = f"{r['tokens_per_s'] / attention_tokens_per_s:.2f}x" if attention_tokens_per_s else "–"
    cells = [
        r["baseline"], compiled, f"{r['tokens_per_s']:,.0f}", ratio, f"{1e9 / r['tokens_per_s'] / 3600:.2f}",
        f"{r['peak_memory_mb']:,.0f} MB", f"{r['first_loss']:.2f} → {r['last_loss']:.2f}",
        "yes" if r["learns"] else "NO",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, list):
        return "[" + ", ".join(short(v) for v in value) + "]"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="toy shapes on the CPU (what CI runs)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_check_out")))
    parser.add_argument("--deadline-s", type=float, default=None, help="time allowance for the whole check")
    parser.add_argument("--measure-compiled", metavar="BASELINE", help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args()
    mode = "cpu" if args.cpu else "gpu"
    if mode == "gpu" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: run with --cpu for the reduced check")
    if args.measure_compiled:
        print(json.dumps(measure(args.measure_compiled, mode, compile=True)))
        return
    check = Check(mode, args.out, args.deadline_s or (420 if mode == "gpu" else 900))
    check.section("harness", lambda: harness_rows(mode, check), needs_s=30)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        root = Path(scratch)
        check.section("sandbox", lambda: sandbox_run(mode, root / "sandbox"), needs_s=40)
        solo = check.found["sandbox"].get("tokens_per_s")  # type: ignore[union-attr]
        check.section("workers", lambda: two_workers(mode, root / "workers", solo), needs_s=40)
        check.section("study", lambda: short_study(mode, root / "study"), needs_s=100)
    check.section("compile", lambda: compile_rows(mode, check), needs_s=40)
    if mode == "gpu":
        write_section("gpu-check", report(check.found))
    print(report(check.found))


if __name__ == "__main__":
    main()
