"""Reviewing a real CPU study: `discover report` opened in a real browser (Debian's Chromium,
headless, driven by Selenium), `discover run`'s live view on a terminal, and `discover reproduce`.
LLM-written text shows as text everywhere and runs nothing."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import discover, require
from tests.test_study import TINY_STUDY

ARTIFACTS = Path(os.environ.get("DISCOVER_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))
# What an LLM might put in a design's motivation: markup that would run if a page echoed it.
HOSTILE_MOTIVATION = (
    '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> & more '
    "**loud** `code` [click](javascript:alert(1))"
)
HOSTILE_NAME = '=HYPERLINK("http://evil")<b>bold</b>[red]markup[/red]'


def query(folder: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(folder / "knowledge.db") as connection:
        return connection.execute(sql, params).fetchall()


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of the TensorBoard event files in `folder` (TFRecord frames of Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in folder.glob("events.out.tfevents.*"):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12 : offset + 12 + length])  # after length and its CRC
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A small real study (baseline, evolved designs, a verification), trained on the process
    backend (its designs are template-generated, so trusted); then one design's name and
    motivation are replaced by what a hostile LLM could have written."""
    folder = tmp_path_factory.mktemp("report") / "study"
    folder.mkdir()
    (folder / "discover.toml").write_text(TINY_STUDY)
    finished = discover(
        "run", "-C", str(folder), "--budget", "5m", "--max-experiments", "7", "--sandbox", "process"
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    child = query(folder, "SELECT id FROM architecture WHERE parent_ids != '[]' ORDER BY created_at LIMIT 1")
    assert child, "the study proposed no design with a parent; raise its budget"
    with sqlite3.connect(folder / "knowledge.db") as connection:
        connection.execute(
            "UPDATE architecture SET name = ?, motivation = ? WHERE id = ?",
            (HOSTILE_NAME, HOSTILE_MOTIVATION, child[0][0]),
        )
    return folder


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    require(
        chromium is not None and driver is not None,
        "no Chromium: apt-get install chromium chromium-driver (the report's browser test)",
    )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,2400"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    yield session
    session.quit()


def test_report_site_shows_the_study_in_a_browser(study, browser):
    from selenium.webdriver.common.by import By

    made = discover("report", "-C", str(study))
    assert made.returncode == 0, made.stdout + made.stderr
    index = study / "report" / "index.html"
    browser.get(index.as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report-index.png"))

    # The leaderboard lists every screened design, baselines included, fittest first.
    screened = query(
        study,
        "SELECT DISTINCT architecture_id FROM run WHERE fidelity = 'screen' AND status = 'succeeded'",
    )
    rows = browser.find_elements(By.CSS_SELECTOR, "table.leaderboard tbody tr")
    assert len(rows) == len(screened) >= 3
    assert any("softmax_attention" in row.text for row in rows)
    fitness = [float(row.find_elements(By.TAG_NAME, "td")[3].text) for row in rows]
    assert fitness == sorted(fitness, reverse=True)

    # Plots are present and the browser could draw them.
    for name in ("discovery", "pareto", "spend"):
        image = browser.find_element(By.CSS_SELECTOR, f"img[src='plots/{name}.svg']")
        assert browser.execute_script("return arguments[0].naturalWidth", image) > 100, name

    # The hostile motivation's markup is shown as text, and none of it ran.
    assert HOSTILE_NAME in browser.find_element(By.TAG_NAME, "body").text
    assert browser.execute_script("return window.pwned") is None

    # Its design page: the motivation as literal text, a diff against its parent, a training curve.
    browser.find_element(By.LINK_TEXT, HOSTILE_NAME).click()
    browser.save_screenshot(str(ARTIFACTS / "report-design.png"))
    assert HOSTILE_MOTIVATION in browser.find_element(By.CSS_SELECTOR, ".motivation").text
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_element(By.TAG_NAME, "h1").text == HOSTILE_NAME
    assert browser.find_elements(By.CSS_SELECTOR, "pre.diff .add") and browser.find_elements(
        By.CSS_SELECTOR, "pre.diff .del"
    )
    curve = browser.find_element(By.CSS_SELECTOR, "img[src^='../plots/curves-']")
    assert browser.execute_script("return arguments[0].naturalWidth", curve) > 100
    probes = browser.find_elements(By.CSS_SELECTOR, "ul.probes li.passed")
    assert len(probes) >= 3, "the probe verdicts of a screened design are listed"


def test_report_exports_csv_and_inert_markdown(study):
    made = discover("report", "-C", str(study))
    assert made.returncode == 0, made.stderr
    report = study / "report"
    with (report / "runs.csv").open() as file:
        runs = list(csv.DictReader(file))
    assert len(runs) == query(study, "SELECT count(*) FROM run")[0][0]
    hostile = [row for row in runs if "HYPERLINK" in row["design"]]
    assert hostile and all(row["design"].startswith("'=") for row in hostile), "a formula stays text"
    succeeded = [row for row in runs if row["status"] == "succeeded"]
    assert all(float(row["value"]) >= 0 and int(row["params"]) > 0 for row in succeeded)
    with (report / "curves.csv").open() as file:
        steps = list(csv.DictReader(file))
    assert {row["run_id"] for row in steps} == {row["run_id"] for row in succeeded}

    # TensorBoard: one run folder per training run, its losses and its held-out metric.
    for row in succeeded:
        run_folder = f"*-{row['design_id'][:8]}/{row['fidelity']}-seed{row['seed']}"
        folders = list((report / "tensorboard").glob(run_folder))
        assert len(folders) == 1, row
        scalars = read_scalars(folders[0])
        logged = [int(step["step"]) for step in steps if step["run_id"] == row["run_id"]]
        assert [step for step, _ in scalars["train/loss"]] == logged
        assert scalars["heldout/accuracy"][0][1] == pytest.approx(float(row["value"]))

    (child_id,) = query(study, "SELECT id FROM architecture WHERE name = ?", HOSTILE_NAME)[0]
    markdown = (report / "designs" / f"{child_id}.md").read_text()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    # Markdown markup from an LLM shows as its characters: no emphasis, code span or link.
    assert r"\*\*loud\*\*" in markdown and r"\`code\`" in markdown and "[click](" not in markdown
    assert "```python\n" in markdown


def test_report_replaces_the_previous_one_whole(study):
    stale = study / "report" / "stale.html"
    stale.parent.mkdir(exist_ok=True)
    stale.write_text("from an older report")
    made = discover("report", "-C", str(study))
    assert made.returncode == 0, made.stderr
    assert not stale.exists() and (study / "report" / "index.html").exists()
    assert not [path for path in study.iterdir() if path.name.startswith(".report-")]


def test_report_of_a_folder_without_a_study_says_so(tmp_path):
    made = discover("report", "-C", str(tmp_path))
    assert made.returncode == 2
    assert "holds no study" in made.stderr and "Traceback" not in made.stderr
    assert list(tmp_path.iterdir()) == []


def test_live_view_panel_shows_budget_experiments_and_best_design(study):
    from rich.console import Console

    from discover.agents.status import study_status
    from discover.progress import status_panel

    status = study_status(study)
    console = Console(record=True, width=200)
    console.print(status_panel(status, eta_s=125.0))
    shown = console.export_text()
    assert f"{status.spent_s / 60:.1f} of {status.budget_s / 60:.1f} device-min spent" in shown
    assert "ETA 2m05s" in shown
    done = status.designs.get("succeeded", 0)
    assert f"{done} done" in shown and done >= 2
    best = next(row for row in status.leaderboard if row["origin"] != "baseline")
    assert f"{best['name']} (fitness {best['fitness']:.3f}" in shown


def test_run_on_a_terminal_shows_the_live_view(study, tmp_path):
    """`discover run` under a pseudo-terminal draws the panel; the log lines still come through."""
    import pty
    import select

    resumed = tmp_path / "resumed"
    shutil.copytree(study, resumed, ignore=shutil.ignore_patterns("report", "jobs"))
    main, secondary = pty.openpty()
    command = [sys.executable, "-m", "discover.cli", "run", "-C", str(resumed), "--resume"]
    command += ["--budget", "3m", "--max-experiments", "1", "--sandbox", "process", "--proposer", "random"]
    process = subprocess.Popen(command, stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    output = b""
    while True:
        ready, _, _ = select.select([main], [], [], 600)
        if not ready:
            process.kill()
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")[-3000:]
    shown = output.decode(errors="replace")
    assert "device-min spent" in shown and "experiments" in shown, shown[-3000:]
    assert "e0" in shown and "leaderboard by fitness" in shown

    # The study now holds an evolution run and a random-search control: the report compares them.
    made = discover("report", "-C", str(resumed))
    assert made.returncode == 0, made.stderr
    index = (resumed / "report" / "index.html").read_text()
    assert (resumed / "report" / "plots" / "proposers.svg").exists() and "Proposers compared" in index


def test_reproduce_trains_a_recorded_result_again_and_matches(study):
    (name, recorded, run_id) = query(
        study,
        "SELECT a.name, json_extract(r.result, '$.value'), r.id FROM architecture a JOIN run r"
        " ON r.architecture_id = a.id WHERE a.origin = 'evolution' AND a.name NOT LIKE '=%'"
        " AND r.fidelity = 'screen' AND r.status = 'succeeded' ORDER BY r.fitness DESC LIMIT 1",
    )[0]
    done = discover("reproduce", name, "-C", str(study), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)
    assert outcome["run_id"] == run_id and outcome["recorded"] == recorded
    assert outcome["verdict"] in ("identical", "within tolerance") and outcome["params_match"]
    assert outcome["warnings"] == []  # same machine, same libraries, same data

    full = query(study, "SELECT id FROM run WHERE fidelity = 'full' AND status = 'succeeded' LIMIT 1")
    if full:  # a full-fidelity run, named by a prefix of its id
        done = discover("reproduce", full[0][0][:8], "-C", str(study))
        assert done.returncode == 0 and "full run" in done.stdout, done.stdout + done.stderr


def test_reproduce_bad_input_says_one_line(study, tmp_path):
    for args, message in (
        (("no_such_design", "-C", str(study)), "no run or design"),
        (("anything", "-C", str(tmp_path)), "holds no study"),
        (("softmax_attention", "-C", str(study), "--sandbox", "vm"), "sandbox"),
    ):
        done = discover("reproduce", *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


def test_a_damaged_knowledge_base_is_one_line_for_every_study_command(tmp_path):
    record = {"study_id": "0" * 32, "heldout_seed": 1, "created_at": "2026-01-01T00:00:00+00:00"}
    (tmp_path / "study.json").write_text(json.dumps(record))
    (tmp_path / "knowledge.db").write_bytes(b"not a database")
    for command in (["report"], ["status"], ["show", "x"], ["reproduce", "x"], ["baseline", "list"],
                    ["run", "--resume", "--sandbox", "process"]):  # fmt: skip
        done = discover(*command, "-C", str(tmp_path))
        assert done.returncode == 2, (command, done.stdout + done.stderr)
        assert "cannot open knowledge base" in done.stderr and "Traceback" not in done.stderr, command
    assert sorted(path.name for path in tmp_path.iterdir()) == ["knowledge.db", "study.json"]
    assert (tmp_path / "knowledge.db").read_bytes() == b"not a database"
