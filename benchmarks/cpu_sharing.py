"""Two studies sharing one CPU host: does each job still get about its share of the cores, and does
the throughput that fitness scores stay put?

Runs `discover run` for a single-worker study (one baseline, softmax attention, screened for
`--steps` steps; the process sandbox) alone, then two such studies side by side, and compares the
training throughput of their screening runs, from each run's result.json: by the wall clock (the
whole fit job; what sharing costs) and per CPU-second of the job (what fitness scores on a CPU
host). With jobs sized for the whole host, two at once ask for twice the cores there are; a fair
share is half the solo wall-clock speed. Targets: each study at >= 40% of its solo wall-clock
speed (issue 18); the scored throughput within 10% of solo (issue 19).
Writes the `cpu-sharing` section of benchmarks/RESULTS.md.

    python -m benchmarks.cpu_sharing [--steps 400] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.results import machine, write_section

BASELINE = "softmax_attention"


def study_config(steps: int) -> str:
    return f"""\
name = "cpu-sharing"
sandbox = "process"
baselines = ["{BASELINE}"]
[settings]
steps = {steps}
log_every = 50
[screen]
settings = {{ steps = {steps} }}
"""


def start_study(folder: Path, steps: int) -> subprocess.Popen:
    folder.mkdir(parents=True)
    (folder / "discover.toml").write_text(study_config(steps))
    command = [sys.executable, "-m", "discover.cli", "run", "-C", str(folder), "--budget", "1h",
               "--max-experiments", "0"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def tokens_per_s(folder: Path, process: subprocess.Popen) -> tuple[float, float]:
    """(tokens per wall-clock second of the fit job, the throughput fitness scored)."""
    output, _ = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise SystemExit(f"study {folder} failed:\n{output}")
    result = json.loads((folder / "runs" / BASELINE / "screen-seed0" / "result.json").read_text())
    if result.get("throughput_clock") != "cpu":
        raise SystemExit(f"study {folder}: throughput was not measured by CPU time")
    tokens = result["steps"] * result["config"]["batch_size"] * result["config"]["seq_len"]
    return tokens / float(result["wall_time_s"]), float(result["tokens_per_s"])


def measure(root: Path, steps: int, together: int) -> list[tuple[float, float]]:
    """(wall-clock, scored) throughput of each of `together` studies started at the same moment."""
    folders = [root / f"study-{index}" for index in range(together)]
    processes = [start_study(folder, steps) for folder in folders]
    return [tokens_per_s(folder, process) for folder, process in zip(folders, processes, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    solo_runs: list[tuple[float, float]] = []
    shared_runs: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="discover-cpu-sharing-") as scratch:
        for repeat in range(args.repeats):
            solo_runs += measure(Path(scratch) / f"solo-{repeat}", args.steps, together=1)
            shared_runs += measure(Path(scratch) / f"pair-{repeat}", args.steps, together=2)
            pair = " and ".join(f"{wall:,.0f}" for wall, _ in shared_runs[-2:])
            print(f"repeat {repeat}: solo {solo_runs[-1][0]:,.0f} tokens/s; side by side {pair}")

    solo, shared = [wall for wall, _ in solo_runs], [wall for wall, _ in shared_runs]
    solo_median = statistics.median(solo)
    ratios = [speed / solo_median for speed in shared]
    scored_solo = statistics.median(scored for _, scored in solo_runs)
    scored_ratios = [scored / scored_solo for _, scored in shared_runs]
    body = "\n".join([
        "## Two studies sharing a CPU host",
        "",
        f"Machine: {machine()}. Each study: one worker, the {BASELINE} baseline screened for "
        f"{args.steps} mqar steps in the process sandbox, its job sized for the whole host (threads = "
        f"cores). {args.repeats} repeats; wall-clock tokens/s from each run's result.json (the whole "
        "fit job, start-up included). A fair share is 50% of solo speed; target >= 40% for each study.",
        "",
        "| setting | tokens/s (median) | range | share of solo speed (median) | worst study |",
        "|---|---|---|---|---|",
        f"| one study alone | {solo_median:,.0f} | {min(solo):,.0f}–{max(solo):,.0f} | 100% | – |",
        f"| two side by side | {statistics.median(shared):,.0f} | {min(shared):,.0f}–{max(shared):,.0f} "
        f"| {statistics.median(ratios):.0%} | {min(ratios):.0%} |",
        "",
        "The throughput fitness scores (tokens per CPU-second of the job, by the kernel's account): "
        f"alone {scored_solo:,.0f} (median); side by side {min(scored_ratios):.0%}–"
        f"{max(scored_ratios):.0%} of that (target: within 10%). Beside another job the harness runs "
        "fewer math threads (`experiments/cpu_share.py`), which spin less, so a shared job's CPU-second "
        "goes slightly further.",
    ])  # fmt: skip
    write_section("cpu-sharing", body)
    print(body)


if __name__ == "__main__":
    main()
