"""`proposer = "auto"`: llm with an endpoint; the warm-started surrogate once the knowledge base holds
enough comparable screens of earlier studies; else evolution; and a resumed study keeps its course."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from discover.agents.config import StudyConfig
from discover.agents.grammar import render, space
from discover.agents.proposer_choice import WARM_SCREENS, choose_proposer
from discover.agents.record import RECORD_FILE, StudyRecord
from discover.knowledge_base.store import KnowledgeBase

CONFIG = StudyConfig(name="ours", task="mqar", proposer="auto", settings={"steps": 300})


@pytest.fixture(autouse=True)
def no_llm_key(monkeypatch):
    monkeypatch.delenv(CONFIG.llm.api_key_env, raising=False)


def earlier_study(folder: Path, config: StudyConfig, screens: int) -> None:
    """An earlier study in the folder's knowledge base, as `discover import` brings one in."""
    with KnowledgeBase(folder / "knowledge.db") as kb:
        study = kb.add_study(config.name, config.model_dump(mode="json")).id
        for genome in random.Random(0).sample(space(), screens):
            architecture = kb.add_architecture(genome.key(), render(genome), "evolution", study_id=study)
            kb.add_run(architecture.id, config.task, study_id=study, fidelity="screen", status="succeeded",
                       fitness=0.5)  # fmt: skip


def test_a_new_folder_runs_evolution_and_an_endpoint_runs_llm(tmp_path, monkeypatch):
    assert choose_proposer(CONFIG, tmp_path)[0] == "evolution"
    assert choose_proposer(CONFIG.with_overrides(proposer="tpe"), tmp_path) == ("tpe", "as configured")
    monkeypatch.setenv(CONFIG.llm.api_key_env, "sk-test")
    assert choose_proposer(CONFIG, tmp_path)[0] == "llm"


def test_enough_comparable_earlier_screens_run_the_surrogate(tmp_path):
    earlier_study(
        tmp_path, CONFIG.with_overrides(name="harder", settings={"steps": 300, "seq_len": 256}), 100
    )
    earlier_study(tmp_path, CONFIG.with_overrides(name="first", seed=1), WARM_SCREENS - 1)
    proposer, why = choose_proposer(CONFIG, tmp_path)  # another setting's screens do not count
    assert proposer == "evolution" and f"{WARM_SCREENS - 1} comparable screens" in why
    earlier_study(tmp_path, CONFIG.with_overrides(name="second", seed=2, proposer="random"), 1)
    proposer, why = choose_proposer(CONFIG, tmp_path)
    assert proposer == "surrogate" and f"{WARM_SCREENS} comparable screens from 2 earlier studies" in why


def test_a_resumed_study_keeps_the_proposer_it_ran(tmp_path):
    earlier_study(tmp_path, CONFIG.with_overrides(name="earlier", seed=1), WARM_SCREENS)
    record = StudyRecord(study_id="ours", heldout_seed=1, created_at=datetime.now(UTC).isoformat())
    (tmp_path / RECORD_FILE).write_text(record.model_copy(update={"proposer": "evolution"}).model_dump_json())
    assert choose_proposer(CONFIG, tmp_path) == ("evolution", "auto: what this study ran before")
    (tmp_path / RECORD_FILE).write_text(record.model_dump_json())  # a study from before it was recorded
    assert choose_proposer(CONFIG, tmp_path)[0] == "surrogate"
