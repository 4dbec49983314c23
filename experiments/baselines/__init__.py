"""The baseline zoo: human-designed mixers, one self-contained candidate file each.

Every file here is a valid candidate (see `discover.experiments.contract`) that imports only torch,
so the agents can read it as an example and the sandbox can run it like any other candidate.
Each defines a fast `forward` (chunkwise-parallel where the literature has one) and a naive
`forward_reference` that tests compare against.
"""

from pathlib import Path

BASELINE_DIR = Path(__file__).parent


def builtin_baselines() -> dict[str, Path]:
    """Name -> file of every built-in baseline, e.g. {"deltanet": .../deltanet.py}."""
    return {p.stem: p for p in sorted(BASELINE_DIR.glob("*.py")) if not p.stem.startswith("_")}
