"""A study's configuration: `discover.toml` in the study folder, documented in `study.toml.j2`.

config = load_config(Path("my-study"))          # defaults where the file is silent
config = config.with_overrides(budget="10m")    # command-line options win
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from discover.agents.proposers import PROPOSERS
from discover.agents.proposers.model_based import WARM_SCREENS
from discover.agents.section import Section
from discover.agents.statistics import ALPHA
from discover.budget.ledger import Budget, parse_budget
from discover.experiments.suite import Suite, resolve_suite
from discover.experiments.tasks import SUITES, TASKS
from discover.sandbox.backends import BACKENDS
from discover.sandbox.base import Limits
from discover.vetting.scoring import ScoringConfig

CONFIG_FILE = "discover.toml"


class ConfigError(ValueError):
    """A study configuration that cannot be used; the message is one line."""


class ScreenConfig(Section):
    # Over [settings] and each task's own screening settings (`Task.screen_settings`).
    settings: dict[str, Any] = Field(default_factory=dict)


class Rung(Section):
    """A rung of the fidelity ladder between the screen and full fidelity: [settings] with these
    settings on top (more steps, a wider or deeper model, longer sequences)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in ("screen", "full"):
            raise ValueError(f"{value!r} is a fidelity of every study; name the rung otherwise")
        return value


class PromotionConfig(Section):
    fraction: float = Field(default=0.2, gt=0, le=1)
    min_screened: int = Field(default=3, ge=1)
    seeds: int = Field(default=5, ge=3)  # per verification, for the design and the baseline alike
    alpha: float = Field(default=ALPHA, gt=0, lt=0.5)  # one-sided; the study's false-discovery rate
    replicate: bool = True  # test every claim again (fresh seeds and held-out data) when the budget allows

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "confidence" in data:
            raise ValueError(
                "promotion.confidence is gone: claims are decided by a paired test at false-discovery "
                "rate promotion.alpha (one-sided, default 0.05); remove confidence"
            )
        return data


class StudyConfigBase(Section):
    """The sections every study has; `StudyConfig` adds one per registered proposer that has one."""

    name: str = "study"
    task: str = "mqar"  # a task, a built-in suite (`discover.experiments.suite.SUITES`) or one of `suites`
    suites: dict[str, list[str]] = Field(default_factory=dict)  # name -> tasks: the study's own suites
    budget: Budget = Field(default_factory=lambda: parse_budget("1h"))  # read from and written as text
    proposer: str = "auto"  # "auto" or a registered proposer (see discover.agents.proposers)
    sandbox: str = "auto"  # "auto" or a registered backend (see discover.sandbox.backends)
    workers: int | None = Field(default=None, ge=1)  # None: one per GPU, or 1 without GPUs
    max_idle_experiments: int = Field(default=20, ge=1)  # in a row with nothing to train: then stop
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # "auto": the cluster this machine belongs to; or host:port
    seed: int = 0
    baselines: list[str] = Field(default_factory=lambda: ["softmax_attention", "gated_deltanet"])
    # A trial's full fidelity (study.toml.j2 says why); a study for research sets its own.
    settings: dict[str, Any] = Field(default_factory=lambda: {"steps": 300})
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    ladder: list[Rung] = Field(default_factory=list)  # rungs between screen and full, cheapest first
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("ladder")
    @classmethod
    def _distinct_rungs(cls, rungs: list[Rung]) -> list[Rung]:
        names = [rung.name for rung in rungs]
        if len(set(names)) < len(names):
            raise ValueError(f"rung names must differ: {', '.join(names)}")
        return rungs

    @field_validator("proposer", "sandbox")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        registry = PROPOSERS if info.field_name == "proposer" else BACKENDS
        if value != "auto" and value not in registry:
            raise ValueError(f"{value!r} is not a {registry.kind}: use {registry.help(('auto',))}")
        return value

    def section(self, name: str) -> Section | None:
        """A proposer's section of the configuration (None for a proposer without one)."""
        proposer = PROPOSERS.get(name)
        return None if proposer.config_section is None else getattr(self, proposer.config_section)

    def with_overrides(self, **overrides: Any) -> StudyConfig:
        """A copy with the command line's options (None means "not given") applied and validated."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return validate(self.model_dump() | given, "the command line")


StudyConfig = create_model(
    "StudyConfig",
    __base__=StudyConfigBase,
    __doc__="A study's configuration: the common sections and each registered proposer's own.",
    **{
        proposer.config_section: (proposer.config_class, Field(default_factory=proposer.config_class))
        for _, proposer in PROPOSERS.items()
        if proposer.config_section is not None and proposer.config_class is not None
    },
)


def default_config_text() -> str:
    """The fully commented default configuration that `discover init` writes: `study.toml.j2`, with
    the registered tasks, proposers and sandbox backends listed."""
    template = resources.files("discover.agents").joinpath("study.toml.j2").read_text()
    return jinja2.Template(template, keep_trailing_newline=True).render(
        tasks=TASKS.summaries(),
        suites=SUITES,
        proposers=PROPOSERS.summaries(),
        backends=BACKENDS.summaries(),
        warm_screens=WARM_SCREENS,
    )


def validate(data: dict[str, Any], where: str) -> StudyConfig:
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {field}: {message}") from None


def load_config(study_dir: Path) -> StudyConfig:
    """The study folder's discover.toml over the defaults; defaults alone when there is none."""
    path = study_dir / CONFIG_FILE
    if not path.exists():
        return StudyConfig()
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return validate(data, str(path))


def study_suite(folder: Path, task: str) -> Suite:
    """What the study in `folder`, on `task` (a task or suite name), scores designs on; a suite its
    discover.toml defined is read from there."""
    try:
        suites = load_config(folder).suites
    except ConfigError:
        suites = {}
    return resolve_suite(task, suites)
