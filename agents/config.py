"""A study's configuration: `discover.toml` in the study folder, documented in `study.toml`.

config = load_config(Path("my-study"))          # defaults where the file is silent
config = config.with_overrides(budget="10m")    # command-line options win
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from discover.agents.llm import LLMSettings
from discover.experiments.scoring import ScoringConfig
from discover.sandbox.base import Limits
from discover.sandbox.budget import parse_budget

CONFIG_FILE = "discover.toml"
Proposer = Literal["auto", "llm", "evolution", "random"]


class ConfigError(ValueError):
    """A study configuration that cannot be used; the message is one line."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScreenConfig(Section):
    settings: dict[str, Any] = Field(default_factory=lambda: {"steps": 500})


class PromotionConfig(Section):
    fraction: float = Field(default=0.2, gt=0, le=1)
    min_screened: int = Field(default=5, ge=1)
    seeds: int = Field(default=3, ge=3)  # a bootstrap interval needs at least three
    confidence: float = Field(default=0.95, gt=0, lt=1)


class EvolutionConfig(Section):
    population: int = Field(default=24, ge=2)
    tournament: int = Field(default=4, ge=1)
    initial: int = Field(default=8, ge=1)
    guided: bool = True  # change the motif the study's measurements favour, not a random one
    classics: bool = True  # start from the grammar's classic designs, then random ones


class LLMConfig(LLMSettings):
    repair_attempts: int = Field(default=2, ge=0)
    judge: bool = False
    prompts_dir: str | None = None


class StudyConfig(Section):
    name: str = "study"
    task: str = "mqar"
    budget: str = "1h"
    proposer: Proposer = "auto"
    sandbox: Literal["auto", "docker", "bwrap", "process"] = "auto"
    workers: int | None = Field(default=None, ge=1)  # None: one per GPU, or 1 without GPUs
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None  # "auto": the cluster this machine belongs to; or host:port
    seed: int = 0
    baselines: list[str] = Field(default_factory=lambda: ["softmax_attention", "gated_deltanet"])
    settings: dict[str, Any] = Field(default_factory=dict)
    screen: ScreenConfig = Field(default_factory=ScreenConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)
    evolution: EvolutionConfig = Field(default_factory=EvolutionConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("budget")
    @classmethod
    def _budget_parses(cls, value: str) -> str:
        parse_budget(value)  # BudgetError is a ValueError: pydantic reports it against the field
        return value

    def with_overrides(self, **overrides: Any) -> StudyConfig:
        """A copy with the command line's options (None means "not given") applied and validated."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return validate(self.model_dump() | given, "the command line")


def default_config_text() -> str:
    """The fully commented default configuration that `discover init` writes."""
    return resources.files("discover.agents").joinpath("study.toml").read_text()


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
