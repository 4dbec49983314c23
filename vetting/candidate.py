"""Vetting a candidate file once, and passing the result on.

    vetted = vet(Path("cand.py"))              # read, decide trust, static check: once
    sandbox.check(vetted, "mqar", {})           # every job of the candidate reuses the result
    sandbox.train(vetted, "mqar", {}, seed=0)

A `VettedCandidate` carries the source text it judged, and the sandbox writes that text, not the
file, into each job: what runs is exactly what was vetted. Its small JSON part (`Vetting`) can be
kept (an experiment's checkpointed state) and turned back into a `VettedCandidate` with
`revet`, which rereads the file and confirms its hash but parses nothing.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from discover.experiments.contract import code_hash
from discover.vetting.static_check import Violation, static_check
from discover.vetting.trust import is_trusted


class VettingMismatch(ValueError):
    """The file no longer holds the code that was vetted."""


class Vetting(BaseModel):
    """What vetting decided about one candidate's code."""

    model_config = ConfigDict(frozen=True)

    code_hash: str  # `contract.code_hash` of the source judged
    trusted: bool
    violations: tuple[Violation, ...] = ()  # the static check's findings; none for trusted code

    @property
    def refused(self) -> bool:
        return bool(self.violations)


class VettedCandidate(Vetting):
    path: Path
    source: str  # what every job of this candidate runs

    @property
    def name(self) -> str:
        return self.path.stem

    def vetting(self) -> Vetting:
        """The part worth keeping: JSON-sized, no source."""
        return Vetting(code_hash=self.code_hash, trusted=self.trusted, violations=self.violations)


def read_source(path: Path) -> str:
    return path.read_text(errors="replace")


def vet(path: Path, trusted: bool | None = None) -> VettedCandidate:
    """Read the candidate once and judge it: trusted code (`trusted`; when None, the trust policy
    on the code alone, i.e. a built-in baseline's text) skips the static check, as it cannot hold
    anything the check refuses; anything else gets it."""
    source = read_source(path)
    if trusted is None:
        trusted = is_trusted(source)
    violations = () if trusted else tuple(static_check(source))
    return VettedCandidate(
        path=path, source=source, code_hash=code_hash(source), trusted=trusted, violations=violations
    )


def revet(path: Path, vetting: Vetting) -> VettedCandidate:
    """`vetting` made for this file earlier, with its source read again (nothing is re-checked);
    raises VettingMismatch when the file's code has changed since."""
    source = read_source(path)
    if code_hash(source) != vetting.code_hash:
        raise VettingMismatch(f"{path} changed since it was vetted")
    return VettedCandidate(path=path, source=source, **vetting.model_dump())
