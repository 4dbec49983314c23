"""The study a new user runs first: `discover init`, then `discover run --budget 10m` with every
default, in the sandbox `auto` picks. It must complete a verification, and nothing it writes (the
report's pages, the leaderboard) may present a one-seed screening comparison as a win."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from discover.report.data import load_study

from .conftest import discover

WIN = re.compile(r"\b(beats|outperforms?|wins?|better than|superior to)\b", re.IGNORECASE)


class WinWords(HTMLParser):
    """Text that speaks of a win, split into what a claim element (class "claim", the report's
    mark for a verified claim) says and what the rest of the page says."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0  # > 0 inside a claim element
        self.claims: list[str] = []
        self.elsewhere: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth or "claim" in (dict(attrs).get("class") or "").split():
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        self.depth = max(0, self.depth - 1)

    def handle_data(self, data: str) -> None:
        if WIN.search(data):
            (self.claims if self.depth else self.elsewhere).append(data.strip())


def win_words(page: Path) -> WinWords:
    parser = WinWords()
    parser.feed(page.read_text())
    return parser


def test_a_default_ten_minute_study_completes_a_verification_and_claims_nothing_from_one_seed(tmp_path):
    folder = tmp_path / "study"
    assert discover("init", str(folder)).returncode == 0
    run = discover("run", "-C", str(folder), "--budget", "10m", timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    status = json.loads(discover("status", "-C", str(folder), "--json").stdout)
    complete = [v for v in status["verifications"] if v["status"] == "complete"]
    assert complete, f"no verification completed: {status['verifications']} {run.stdout[-2000:]}"
    assert len(complete[0]["seeds"]) == 5 and None not in complete[0]["baseline_values"]
    claimed = {v["design"] for v in status["verifications"] if v["beats"]}
    assert status["claims"] == len(claimed)

    report = folder / "report"
    index = win_words(report / "index.html")
    assert len(index.claims) == len(claimed), index.claims  # one claims-table verdict per claim
    for page in [report / "index.html", *sorted((report / "designs").glob("*.html"))]:
        words = win_words(page)
        # Outside a verified claim, win words appear only to deny one ("not shown better").
        assert all("not shown" in text for text in words.elsewhere), (page.name, words.elsewhere)
        if page.parent.name == "designs" and words.claims:
            title = re.search(r"<h1>(.*?)</h1>", page.read_text()).group(1)
            assert title in claimed, (page.name, words.claims)

    view = load_study(folder)
    if view.discovery:  # the curve counts verified claims, never screening results
        assert view.discovery[-1].verified_claims == len(claimed)
    leaderboard = (folder / "leaderboard.md").read_text().splitlines()
    for line in leaderboard:
        if WIN.search(line) and "not shown" not in line:
            assert "q = " in line and any(design in line for design in claimed), line
