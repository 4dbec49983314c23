"""What `proposer = "auto"` runs, in this order:

    llm         an LLM endpoint is configured: `[llm] base_url`, or a key in `api_key_env`
    as before   the study is resumed: the proposer it last ran (study.json), so a study does not
                change course because other studies were imported in between
    surrogate   the study's knowledge base holds at least WARM_SCREENS screens of other studies made
                the way this study screens (same task, settings, screen, baselines, scoring)
    evolution   otherwise

Why (benchmarks/search.py, RESULTS.md `search-random-start` and `-24`, 10 seeds, every arm from the
same random designs): with earlier studies to learn from, the warm-started surrogate ends
12-experiment studies +0.15 fitness above cold evolution (paired 95% interval +0.05 to +0.25) and
+0.16 above random search, and in 24-experiment studies reaches random search's final best in a
median of 6 experiments; without them, evolution reaches it sooner than the cold surrogate.
"""

from __future__ import annotations

import os
from pathlib import Path

from discover.agents.config import StudyConfig
from discover.agents.proposers.model_based import WARM_SCREENS, screens_alike
from discover.agents.record import RECORD_FILE, StudyRecord, open_knowledge_base


def choose_proposer(config: StudyConfig, folder: Path) -> tuple[str, str]:
    """The proposer `config.proposer` names, `auto` resolved for the study in `folder`, and why."""
    if config.proposer != "auto":
        return config.proposer, "as configured"
    if config.llm.base_url or os.environ.get(config.llm.api_key_env):
        return "llm", "auto: an LLM endpoint is configured"
    record_path = folder / RECORD_FILE
    record = StudyRecord.model_validate_json(record_path.read_text()) if record_path.exists() else None
    if record is not None and record.proposer is not None:
        return record.proposer, "auto: what this study ran before"
    screens, studies = comparable_screens(config, folder, record.study_id if record else "")
    if screens >= WARM_SCREENS:
        return "surrogate", f"auto: {screens} comparable screens from {studies} earlier studies to learn from"
    return "evolution", f"auto: {screens} comparable screens from earlier studies, fewer than {WARM_SCREENS}"


def comparable_screens(config: StudyConfig, folder: Path, study_id: str) -> tuple[int, int]:
    """How many screens, from how many other studies, the knowledge base in `folder` holds that
    score as this study's would; (0, 0) when it has no knowledge base yet."""
    if not (folder / "knowledge.db").exists():
        return 0, 0
    ours = config.model_dump(mode="json")
    with open_knowledge_base(folder) as kb:
        rows = [
            other
            for _, _, other, theirs in kb.other_studies_screens(config.task, study_id)
            if screens_alike(ours, theirs)
        ]
    return len(rows), len(set(rows))
