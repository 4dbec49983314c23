"""The studies a new user runs first. The README's quickstart, `discover run --budget 10m` in a new
folder with every default (mqar alone), in the sandbox `auto` picks: it must complete a
verification, and nothing it writes (the report's pages, the leaderboard) may present a one-seed
screening comparison as a win. And the study `discover init` writes, which screens on the suite."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from discover.experiments.tasks import SUITES
from discover.report.data import load_study

from .conftest import discover

WIN = re.compile(r"\b(beats|outperforms?|wins?|better than|superior to)\b", re.IGNORECASE)


class WinWords(HTMLParser):
    """Text that speaks of a win, split into what the report marks as a verified claim (an element
    of class "claim": a claims-table verdict, a design's verdict, a verification's finding) and
    what the rest of the page says. A claim element names its design (`data-design`) or its text
    does."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 inside a claim element
        self.claims: list[tuple[str, str]] = []  # (the design named by the element, its text)
        self.elsewhere: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if self.depth:
            self.depth += 1
        elif "claim" in (attributes.get("class") or "").split():
            self.depth = 1
            self.claims.append((attributes.get("data-design") or "", ""))

    def handle_endtag(self, tag: str) -> None:
        self.depth = max(0, self.depth - 1)

    def handle_data(self, data: str) -> None:
        if self.depth:
            design, text = self.claims[-1]
            self.claims[-1] = (design, text + data)
        elif WIN.search(data):
            self.elsewhere.append(data.strip())


def win_words(page: Path) -> WinWords:
    parser = WinWords()
    parser.feed(page.read_text())
    return parser


def assert_wins_only_from_verifications(report: Path, claimed: set[str]) -> None:
    """Every page of the report: a win is said only where a verification made the claim."""
    table = [design for design, _ in win_words(report / "index.html").claims if design]
    assert sorted(table) == sorted(claimed)  # one claims-table verdict per claim
    for page in [report / "index.html", *sorted((report / "designs").glob("*.html"))]:
        words = win_words(page)
        # Outside a verified claim, win words appear only to deny one ("not shown better").
        assert all("not shown" in text for text in words.elsewhere), (page.name, words.elsewhere)
        for design, text in words.claims:  # and every claim is one a verification made
            assert design in claimed or any(name in text for name in claimed), (page.name, design, text)


def test_a_default_ten_minute_study_completes_a_verification_and_claims_nothing_from_one_seed(tmp_path):
    folder = tmp_path / "study"
    run = discover("run", "-C", str(folder), "--budget", "10m", timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    status = json.loads(discover("status", "-C", str(folder), "--json").stdout)
    complete = [v for v in status["verifications"] if v["status"] == "complete"]
    assert complete, f"no verification completed: {status['verifications']} {run.stdout[-2000:]}"
    assert len(complete[0]["seeds"]) == 5 and None not in complete[0]["baseline_values"]
    claimed = {v["design"] for v in status["verifications"] if v["beats"]}
    assert status["claims"] == len(claimed)

    assert_wins_only_from_verifications(folder / "report", claimed)

    view = load_study(folder)
    if view.discovery:  # the curve counts verified claims, never screening results
        assert view.discovery[-1].verified_claims == len(claimed)
    leaderboard = (folder / "leaderboard.md").read_text().splitlines()
    for line in leaderboard:
        if WIN.search(line) and "not shown" not in line:
            assert "q = " in line and any(design in line for design in claimed), line


def test_the_study_init_writes_screens_every_design_on_the_suite(tmp_path):
    folder = tmp_path / "study"
    assert discover("init", str(folder)).returncode == 0
    run = discover("run", "-C", str(folder), "--max-experiments", "1", "--sandbox", "process", timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    view = load_study(folder)
    assert view.tasks == list(SUITES["suite"]) and view.metric == "mean accuracy"
    screened = [design for design in view.designs if design.screen is not None]
    assert len(screened) >= 3  # the two baselines and the experiment's design
    for design in screened:
        assert set(design.screen["parts"]) == set(SUITES["suite"])
        page = (folder / "report" / "designs" / f"{design.slug}.html").read_text()
        assert "<h2>Per task</h2>" in page and all(f"<td>{task}</td>" in page for task in SUITES["suite"])
    proposed = [design for design in screened if not design.is_baseline]
    assert proposed and all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", design.name) for design in proposed)
