"""Two studies sharing one CPU host: does each job still get about its share of the cores?

Runs `discover run` for a single-worker study (one baseline, softmax attention, screened for
`--steps` steps; the process sandbox) alone, then two such studies side by side, and compares the
training throughput of their screening runs (tokens/s, from each run's result.json). With jobs
sized for the whole host, two of them at once ask for twice the cores there are; a fair share is
half the solo speed. Target (issue 18): each study at >= 40% of its solo speed.
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


def tokens_per_s(folder: Path, process: subprocess.Popen) -> float:
    output, _ = process.communicate(timeout=3600)
    if process.returncode != 0:
        raise SystemExit(f"study {folder} failed:\n{output}")
    result = json.loads((folder / "runs" / BASELINE / "screen-seed0" / "result.json").read_text())
    # Wall-clock speed, what sharing the host costs; the result's own tokens_per_s is per CPU-second
    # on a CPU host (load-independent by design, so it cannot show this).
    tokens = result["steps"] * result["config"]["batch_size"] * result["config"]["seq_len"]
    return tokens / float(result["wall_time_s"])


def measure(root: Path, steps: int, together: int) -> list[float]:
    """Tokens/s of each of `together` studies started at the same moment."""
    folders = [root / f"study-{index}" for index in range(together)]
    processes = [start_study(folder, steps) for folder in folders]
    return [tokens_per_s(folder, process) for folder, process in zip(folders, processes, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    solo: list[float] = []
    shared: list[float] = []
    with tempfile.TemporaryDirectory(prefix="discover-cpu-sharing-") as scratch:
        for repeat in range(args.repeats):
            solo += measure(Path(scratch) / f"solo-{repeat}", args.steps, together=1)
            shared += measure(Path(scratch) / f"pair-{repeat}", args.steps, together=2)
            pair = " and ".join(f"{speed:,.0f}" for speed in shared[-2:])
            print(f"repeat {repeat}: solo {solo[-1]:,.0f} tokens/s; side by side {pair}")

    solo_median = statistics.median(solo)
    ratios = [speed / solo_median for speed in shared]
    body = "\n".join([
        "## Two studies sharing a CPU host",
        "",
        f"Machine: {machine()}. Each study: one worker, the {BASELINE} baseline screened for "
        f"{args.steps} mqar steps in the process sandbox, its job sized for the whole host (threads = "
        f"cores). {args.repeats} repeats; tokens/s from each run's result.json (the whole fit job, "
        "start-up included). A fair share is 50% of solo speed; target >= 40% for each study.",
        "",
        "| setting | tokens/s (median) | range | share of solo speed (median) | worst study |",
        "|---|---|---|---|---|",
        f"| one study alone | {solo_median:,.0f} | {min(solo):,.0f}–{max(solo):,.0f} | 100% | – |",
        f"| two side by side | {statistics.median(shared):,.0f} | {min(shared):,.0f}–{max(shared):,.0f} "
        f"| {statistics.median(ratios):.0%} | {min(ratios):.0%} |",
    ])  # fmt: skip
    write_section("cpu-sharing", body)
    print(body)


if __name__ == "__main__":
    main()
