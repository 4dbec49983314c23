"""Do the grammar's renditions of the classic designs compute the same functions as the built-in
baselines of the same names? The probe's functional hash (outputs on a fixed input under a fixed
initialisation seed) is what a study's deduplication compares, so this says whether evolution's
first designs are recognised as the baselines they imitate.

Runs the check job (process sandbox, mqar) for each classic and each baseline and compares hashes.
Writes the `functional-hash` section of benchmarks/RESULTS.md.

    python -m benchmarks.functional_hash
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.results import machine, write_section
from discover.agents.grammar import CLASSICS, render
from discover.experiments.baselines import builtin_baselines
from discover.experiments.runspec import RunSpec
from discover.sandbox.backends import BackendOptions, make_backend
from discover.sandbox.runner import Sandbox
from discover.vetting.candidate import vet

BASELINE_OF = {
    "linear attention": "linear_attention", "retention": "retention", "GLA": "gla", "DeltaNet": "deltanet",
    "Gated DeltaNet": "gated_deltanet",
}  # fmt: skip


def main() -> None:
    spec = RunSpec.resolve("mqar")
    rows = []
    with tempfile.TemporaryDirectory(prefix="discover-functional-hash-") as scratch:
        sandbox = Sandbox(make_backend("process", BackendOptions()), Path(scratch))

        def functional_hash(path: Path) -> str | None:
            return sandbox.check(vet(path, trusted=True), spec).functional_hash

        for classic, genome in CLASSICS.items():
            rendered = Path(scratch) / f"{BASELINE_OF[classic]}_classic.py"
            rendered.write_text(render(genome))
            baseline = BASELINE_OF[classic]
            mine, theirs = functional_hash(rendered), functional_hash(builtin_baselines()[baseline])
            rows.append(
                f"| {classic} | {baseline} | {mine} | {theirs} | {'yes' if mine == theirs else 'no'} |"
            )
            print(rows[-1])
    body = "\n".join([
        "## Functional hashes of the grammar's classics and the built-in baselines",
        "",
        f"Machine: {machine()}. mqar defaults (d_model 64, 4 heads); the probe's hash of outputs on a "
        "fixed input under a fixed initialisation seed.",
        "",
        "| grammar classic | built-in baseline | classic's hash | baseline's hash | equal |",
        "|---|---|---|---|---|",
        *rows,
    ])  # fmt: skip
    write_section("functional-hash", body)
    print(body)


if __name__ == "__main__":
    main()
