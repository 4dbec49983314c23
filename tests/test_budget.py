"""The budget: parsing, the ledger's arithmetic and its one replay, persistence in the knowledge base
across processes and kills, estimates, the budgeted job loop, settling a crash, and `discover status`
and the report agreeing with the ledger."""

import json
import math
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
from sqlmodel import select

from discover.agents.config import ConfigError, StudyConfig
from discover.agents.record import RECORD_FILE, StudyRecord
from discover.budget.estimate import CostEstimator
from discover.budget.jobs import INFRASTRUCTURE_RETRIES, BudgetedJobs, OutOfBudget, Paused, Slot
from discover.budget.ledger import (
    Budget,
    BudgetError,
    Ledger,
    LedgerEntry,
    LedgerError,
    parse_budget,
    replay,
)
from discover.budget.settle import settle_interrupted_jobs
from discover.budget.store import DatabaseLedgerStore
from discover.knowledge_base.schema import BudgetEntry
from discover.knowledge_base.store import KnowledgeBase
from discover.sandbox.base import JobOutcome
from discover.sandbox.pool import DevicePool
from discover.sandbox.runner import JobFailed

# fork: workers start in milliseconds with this module already imported (spawn would re-import it
# per worker, seconds on a busy machine). Each worker opens the knowledge base itself, so the
# locking under test is between separate processes and connections, as between `discover` runs.
FORK = multiprocessing.get_context("fork")


def ledger_in(kb: KnowledgeBase, seconds: float = 100.0, name: str = "study-1") -> Ledger:
    return Ledger(Budget(text=f"{seconds}s", device_seconds=seconds), DatabaseLedgerStore(kb, name))


class Ledgers:
    """Opens ledgers in the test's database (SQLite, or PostgreSQL in CI), each call through new
    connections, as another process (or a resumed study) would."""

    def __init__(self, location: str):
        self.location = location
        self.opened: list[KnowledgeBase] = []

    def __call__(self, seconds: float = 100.0, name: str = "study-1") -> Ledger:
        return Ledger(Budget(text=f"{seconds}s", device_seconds=seconds), self.store(name))

    def store(self, name: str = "study-1") -> DatabaseLedgerStore:
        self.opened.append(KnowledgeBase(self.location, starter=None))
        return DatabaseLedgerStore(self.opened[-1], name)


@pytest.fixture
def open_ledger(kb_location):
    ledgers = Ledgers(kb_location)
    yield ledgers
    for kb in ledgers.opened:
        kb.close()


# ----------------------------------------------------------------------------- parse_budget


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("200gpuh", 200 * 3600),
        ("90gpum", 90 * 60),
        ("2h", 7200),
        ("30m", 1800),
        ("1.5h", 5400),
        ("0.5gpuh", 1800),
        ("2.25m", 135),
        ("200GPUH", 200 * 3600),
        ("90GpuM", 5400),
        ("2H", 7200),
        ("  30m\n", 1800),
        ("2 h", 7200),
        ("007h", 7 * 3600),
    ],
)
def test_parse_budget_accepts(text, seconds):
    budget = parse_budget(text)
    assert budget.device_seconds == seconds
    assert budget.text == text


def test_cpu_and_gpu_units_mean_the_same_device_time():
    assert parse_budget("2h") == parse_budget("2h")
    assert parse_budget("3h").device_seconds == parse_budget("3gpuh").device_seconds
    assert parse_budget("45m").device_seconds == parse_budget("45gpum").device_seconds


@pytest.mark.parametrize(
    "text",
    [
        "", "   ", "0h", "0.0gpuh", "00m", "-2h", "+2h", "2x", "h", "gpuh", "10", "1e400h", "1e3h",
        "nan h", "nanh", "inf h", "infh", "2hh", "2 gpu h", "2h30m", "1,5h", ".5h", "5.h", "2s",
        "2 hours", "١h", "2h extra", "9" * 400 + "h",
    ],
)  # fmt: skip
def test_parse_budget_rejects_with_one_line(text):
    with pytest.raises(BudgetError) as caught:
        parse_budget(text)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(text) in message
    assert "200gpuh" in message  # says what would work
    assert isinstance(caught.value, ValueError)


def test_budget_rejects_bad_seconds_directly():
    with pytest.raises(ValueError):
        Budget(text="x", device_seconds=0)
    with pytest.raises(ValueError):
        Budget(text="x", device_seconds=math.inf)


# ----------------------------------------------------------------------------- ledger arithmetic


def test_reserve_charge_release_arithmetic(open_ledger):
    ledger = open_ledger(100.0)
    assert (ledger.spent, ledger.reserved, ledger.left) == (0.0, 0.0, 100.0)

    assert ledger.reserve("a", 30.0)
    assert ledger.reserve("b", 20.0)
    assert ledger.outstanding() == {"a": 30.0, "b": 20.0}
    assert (ledger.spent, ledger.reserved, ledger.left) == (0.0, 50.0, 50.0)

    assert ledger.charge("a", wall_seconds=10.0, devices=2) == 20.0  # cheaper than reserved
    assert (ledger.spent, ledger.reserved, ledger.left) == (20.0, 20.0, 60.0)

    ledger.release("b")  # never started: nothing charged
    assert (ledger.spent, ledger.reserved, ledger.left) == (20.0, 0.0, 80.0)
    assert ledger.outstanding() == {}


def test_reservation_must_fit_in_what_is_left(open_ledger):
    ledger = open_ledger(100.0)
    assert ledger.reserve("a", 60.0)
    entries_before = list(ledger.store.entries())

    assert not ledger.reserve("b", 40.000001)
    assert ledger.outstanding() == {"a": 60.0}
    assert open_ledger(100.0).store.entries() == entries_before  # a refused job leaves no trace

    assert ledger.reserve("b", 40.0)  # exactly what is left fits
    assert ledger.left == 0.0
    assert not ledger.reserve("c", 1e-9)

    ledger.release("b")
    assert ledger.reserve("c", 40.0)  # "c" was refused before, so its id is still free


def test_failure_is_charged_by_what_it_used(open_ledger):
    ledger = open_ledger(100.0)
    assert ledger.reserve("crashes-early", 50.0)
    assert ledger.reserve("overruns", 10.0)
    ledger.charge("crashes-early", wall_seconds=3.0, devices=1)
    ledger.charge("overruns", wall_seconds=12.5, devices=2)  # used more than it reserved
    assert ledger.spent == 28.0
    assert ledger.left == 72.0


def test_overspending_blocks_further_reservations(open_ledger):
    ledger = open_ledger(10.0)
    assert ledger.reserve("a", 10.0)
    ledger.charge("a", wall_seconds=15.0, devices=1)
    assert ledger.left == -5.0
    assert not ledger.reserve("b", 0.5)


def test_unknown_or_settled_jobs_cannot_be_settled(open_ledger):
    ledger = open_ledger(100.0)
    with pytest.raises(LedgerError, match="no reservation"):
        ledger.charge("ghost", 1.0, 1)
    with pytest.raises(LedgerError, match="no reservation"):
        ledger.release("ghost")

    assert ledger.reserve("a", 10.0)
    ledger.charge("a", 4.0, 1)
    with pytest.raises(LedgerError, match="already charged"):
        ledger.charge("a", 4.0, 1)
    with pytest.raises(LedgerError, match="already charged"):
        ledger.release("a")
    with pytest.raises(LedgerError, match="already in the ledger"):
        ledger.reserve("a", 1.0)

    assert ledger.reserve("b", 10.0)
    ledger.release("b")
    with pytest.raises(LedgerError, match="already released"):
        ledger.charge("b", 1.0, 1)
    assert ledger.spent == 4.0  # nothing was charged twice


def test_a_released_job_may_be_reserved_again_and_is_charged_once(open_ledger):
    """A job lost with its machine is released and retried under the same id."""
    ledger = open_ledger(100.0)
    assert ledger.reserve("a", 10.0)
    assert ledger.used("a")  # outstanding
    ledger.release("a")
    assert not ledger.used("a")
    assert ledger.reserve("a", 10.0)
    ledger.charge("a", 3.0, 1)
    assert ledger.used("a") and not ledger.used("never-seen")  # `used` says what reserve refuses
    with pytest.raises(LedgerError, match="already in the ledger"):
        ledger.reserve("a", 1.0)
    assert ledger.spent == 3.0 and ledger.left == 97.0
    assert open_ledger(100.0).spent == 3.0  # the replay agrees


@pytest.mark.parametrize("estimate", [0.0, -1.0, math.nan, math.inf])
def test_bad_estimates_are_refused_loudly(open_ledger, estimate):
    ledger = open_ledger()
    with pytest.raises(ValueError, match="estimate"):
        ledger.reserve("a", estimate)


@pytest.mark.parametrize("wall, devices", [(-1.0, 1), (math.nan, 1), (1.0, 0), (1.0, 1.5), (1.0, True)])
def test_bad_measurements_are_refused_loudly(open_ledger, wall, devices):
    ledger = open_ledger()
    assert ledger.reserve("a", 1.0)
    with pytest.raises(ValueError):
        ledger.charge("a", wall, devices)
    assert ledger.outstanding() == {"a": 1.0}


def test_charges_sum_exactly_to_measured_use(open_ledger):
    ledger = open_ledger(1e9)
    rng = random.Random(0)
    measured = []
    for index in range(60):
        job = f"job-{index}"
        assert ledger.reserve(job, rng.uniform(1, 1000))
        wall, devices = rng.uniform(0, 3000) / 7, rng.randint(1, 8)  # awkward binary fractions
        ledger.charge(job, wall, devices)
        measured.append(wall * devices)

    assert ledger.spent == math.fsum(measured)
    assert ledger.left == math.fsum([1e9, *(-m for m in measured)])
    again = open_ledger(1e9)
    charges = [entry.seconds for entry in again.store.entries() if entry.op == "charge"]
    assert charges == measured  # every charge is wall * devices, bit for bit, through the database
    assert again.spent == math.fsum(measured)


# ----------------------------------------------------------------------------- the one replay


def test_replay_is_the_ledgers_own_arithmetic(open_ledger):
    """`replay` over a store's entries says what the ledger says, retries included (a job released
    and reserved again counts as reserved: the hand-rolled sums it replaced did not count it)."""
    ledger = open_ledger(100.0)
    ledger.reserve("charged", 10.0, key="mqar/screen")
    ledger.charge("charged", 4.0, 2)
    ledger.reserve("dropped", 5.0)
    ledger.release("dropped")
    ledger.reserve("retried", 7.0)
    ledger.release("retried")
    ledger.reserve("retried", 9.0)  # its retry, still running

    accounts = replay(open_ledger(100.0).store.entries())
    assert (accounts.spent, accounts.reserved) == (ledger.spent, ledger.reserved) == (8.0, 9.0)
    assert accounts.left(ledger.total) == ledger.left == 83.0
    assert accounts.outstanding == ledger.outstanding() == {"retried": 9.0}
    assert accounts.charged == {"charged": 8.0}
    assert accounts.released == {"dropped"}
    assert accounts.costs() == ledger.costs() == [("mqar/screen", 8.0)]
    assert accounts.used("charged") and accounts.used("retried") and not accounts.used("dropped")


def test_replay_refuses_an_inconsistent_history():
    reserve = LedgerEntry(op="reserve", job_id="a", seconds=1.0)
    charge = LedgerEntry(op="charge", job_id="a", seconds=1.0, wall_seconds=1.0, devices=1)
    with pytest.raises(LedgerError, match="reserved twice"):
        replay([reserve, reserve])
    with pytest.raises(LedgerError, match="not reserved"):
        replay([charge])
    with pytest.raises(LedgerError, match="reserved twice"):
        replay([reserve, charge, reserve])  # a charged job is never reserved again
    accounts = replay([reserve])
    with pytest.raises(LedgerError):
        accounts.catch_up([reserve, reserve])
    assert accounts.applied == 1  # the bad entry is not counted as folded in: it stays reported


# ----------------------------------------------------------------------------- persistence


def test_replay_after_reopening(open_ledger):
    first = open_ledger(100.0)
    first.reserve("a", 30.0, key="mqar/train")
    first.reserve("b", 20.0)
    first.reserve("c", 5.0)
    first.charge("a", 12.0, 2)
    first.release("c")

    again = open_ledger(100.0)
    assert again.spent == 24.0
    assert again.outstanding() == {"b": 20.0}
    assert again.left == 56.0
    assert again.costs() == [("mqar/train", 24.0)]
    again.charge("b", 1.0, 1)  # the resumed ledger settles what the first one reserved
    with pytest.raises(LedgerError):
        again.release("c")
    assert first.spent == 25.0  # and the first sees it


def test_every_entry_is_one_row_with_its_fields(open_ledger, kb_location):
    ledger = open_ledger()
    ledger.reserve("a", 3.0, key="lm/train")
    ledger.charge("a", 1.5, 2)
    with KnowledgeBase(kb_location, starter=None) as kb, kb.reading() as session:
        rows = session.exec(select(BudgetEntry).order_by(BudgetEntry.seq)).all()
    assert [row.op for row in rows] == ["reserve", "charge"]
    assert rows[1].model_dump(exclude={"seq"}) | {"at": 0} == {
        "ledger": "study-1", "op": "charge", "job_id": "a", "seconds": 3.0, "wall_seconds": 1.5,
        "devices": 2, "key": "lm/train", "at": 0,
    }  # fmt: skip


def test_ledgers_of_one_database_are_apart(open_ledger):
    mine, theirs = open_ledger(10.0, name="mine"), open_ledger(5.0, name="theirs")
    assert mine.reserve("a", 10.0)
    assert theirs.reserve("a", 5.0)  # the same job id in another ledger
    mine.charge("a", 2.0, 1)
    assert (mine.spent, theirs.reserved, theirs.spent) == (2.0, 5.0, 0.0)


def test_a_damaged_entry_is_reported_with_its_number(open_ledger, kb_location):
    ledger = open_ledger()
    ledger.reserve("a", 3.0)
    with KnowledgeBase(kb_location, starter=None) as kb, kb.writing() as session:
        session.add(BudgetEntry(ledger="study-1", op="refund", job_id="a", seconds=1.0, at=0.0))
    with pytest.raises(LedgerError, match="entry 2 is damaged"):
        open_ledger()
    store = open_ledger.store()
    for _ in range(2):  # it stays reported, at the same entry, and nothing is half-read
        with pytest.raises(LedgerError, match="entry 2 is damaged"):
            store.entries()
    with pytest.raises(LedgerError, match="entry 2 is damaged"):
        store.append(LedgerEntry(op="reserve", job_id="b", seconds=1.0))
    with KnowledgeBase(kb_location, starter=None) as kb:
        assert kb.count(BudgetEntry) == 2  # a damaged ledger takes no more entries


def test_inconsistent_history_is_reported(open_ledger):
    store = open_ledger.store()
    store.append(LedgerEntry(op="charge", job_id="never-reserved", seconds=1.0, wall_seconds=1.0, devices=1))
    with pytest.raises(LedgerError, match="inconsistent"):
        Ledger(Budget(text="1h", device_seconds=3600), store)


def write_forever(location: str, done) -> None:
    """Reserve and charge jobs until killed; `done` counts the jobs whose charge returned."""
    ledger = ledger_in(KnowledgeBase(location, starter=None), 1e12)
    for index in range(1_000_000):
        ledger.reserve(f"job-{index}", 2.0)
        ledger.charge(f"job-{index}", 0.5, 3)
        done.value = index + 1


def test_kill_9_mid_stream_loses_nothing_that_returned(open_ledger, kb_location):
    KnowledgeBase(kb_location, starter=None).close()  # the schema, before any process writes
    done = FORK.Value("q", 0, lock=False)  # no lock: the child may die at any instruction
    writer = FORK.Process(target=write_forever, args=(kb_location, done))
    writer.start()
    deadline = time.monotonic() + 20
    while done.value < 15 and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert writer.exitcode == -signal.SIGKILL
    finished = done.value
    assert finished >= 15

    ledger = open_ledger(1e12)  # the database replays cleanly
    on_file = {entry.job_id for entry in ledger.store.entries() if entry.op == "charge"}
    returned = {f"job-{index}" for index in range(finished)}
    assert returned <= on_file  # every charge that returned is stored ...
    assert len(on_file - returned) <= 1  # ... plus at most the one in flight
    assert len(ledger.outstanding()) <= 1
    assert ledger.spent == 1.5 * len(on_file)
    assert ledger.reserve("after-the-crash", 1.0)  # and it takes new entries


# (budget, attempts per worker) of each round: 3 s jobs, so budget // 3 fit. The small rounds put
# every racer at the budget's edge at once; the large one makes them interleave for a while.
ROUNDS = [(10.0, 4), (10.0, 4), (10.0, 4), (14.0, 4), (100.0, 15)]


def race_to_reserve(location: str, start, admitted, worker: int) -> None:
    try:
        kb = KnowledgeBase(location, starter=None)  # each racer its own connections, as a process has
        for number, (total, attempts) in enumerate(ROUNDS):
            ledger = ledger_in(kb, total, name=f"round-{number}")
            start.wait(timeout=30)  # every racer begins each round together
            jobs = (f"w{worker}-{k}" for k in range(attempts))
            admitted[number * 4 + worker] = sum(ledger.reserve(job, 3.0) for job in jobs)
    except BaseException:
        start.abort()  # so the other racers fail fast instead of waiting for this one
        raise


def test_concurrent_processes_never_over_commit(open_ledger, kb_location):
    KnowledgeBase(kb_location, starter=None).close()  # the schema, before the racers start
    workers = 4
    start = FORK.Barrier(workers)
    admitted = FORK.Array("i", len(ROUNDS) * workers, lock=False)
    racers = [
        FORK.Process(target=race_to_reserve, args=(kb_location, start, admitted, worker))
        for worker in range(workers)
    ]
    for racer in racers:
        racer.start()
    try:
        for racer in racers:
            racer.join(timeout=120)
            assert racer.exitcode == 0
    finally:
        for racer in racers:
            racer.kill()  # a no-op for those that finished

    for number, (total, _) in enumerate(ROUNDS):
        fit = int(total // 3)
        assert sum(admitted[number * 4 : number * 4 + 4]) == fit  # no more let in, none lost
        ledger = open_ledger(total, name=f"round-{number}")
        assert len(ledger.outstanding()) == fit
        assert ledger.reserved == 3.0 * fit
        committed = 0.0
        for entry in ledger.store.entries():  # at no point in the history was it over
            committed += entry.seconds
            assert committed <= total


def test_threads_sharing_one_ledger_never_over_commit(open_ledger):
    import threading

    ledger = open_ledger(50.0)
    results = []

    def grab() -> None:
        results.extend(ledger.reserve(f"t{threading.get_ident()}-{k}", 2.0) for k in range(10))

    threads = [threading.Thread(target=grab) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == 25
    assert ledger.left == 0.0


# ----------------------------------------------------------------------------- budgeted jobs


def budgeted_jobs(ledger: Ledger) -> BudgetedJobs:
    """One CPU slot, and estimates without a margin, so the figures below are easy to check."""
    return BudgetedJobs(ledger, CostEstimator(default_seconds=10.0, margin=1.0), DevicePool(["cpu:0"]))


def fails(status: str, reason: str = "boom"):
    def run(slot: Slot):
        raise JobFailed(JobOutcome(job_id="x", status=status, reason=reason))

    return run


def test_a_job_is_reserved_run_and_charged_its_wall_time(open_ledger):
    jobs = budgeted_jobs(open_ledger())
    charged = jobs.run("a", "mqar/screen", 0, lambda slot: slot.device)
    assert (charged.value, charged.failure, charged.lost) == ("cpu", None, [])
    assert charged.cost == jobs.ledger.spent and 0 <= charged.cost < 5
    assert jobs.estimator.mean("mqar/screen") == charged.cost  # learned for the next estimate
    assert [entry.op for entry in jobs.ledger.store.entries()] == ["reserve", "charge"]
    assert jobs.ledger.store.entries()[0].key == "mqar/screen"


def test_a_failed_job_is_charged_too_and_returns_its_failure(open_ledger):
    jobs = budgeted_jobs(open_ledger())
    charged = jobs.run("a", "check", 0, fails("failed", "NaN loss"))
    assert charged.value is None and charged.failure.reason == "NaN loss"
    assert [entry.op for entry in jobs.ledger.store.entries()] == ["reserve", "charge"]
    assert jobs.ledger.spent == charged.cost


def test_a_job_lost_with_its_machine_is_released_and_retried(open_ledger):
    jobs = budgeted_jobs(open_ledger())
    attempts = iter([fails("lost", "node died"), lambda slot: "ok"])
    charged = jobs.run("a", "k", 0, lambda slot: next(attempts)(slot))
    assert (charged.value, charged.lost) == ("ok", ["node died"])
    assert [entry.op for entry in jobs.ledger.store.entries()] == ["reserve", "release", "reserve", "charge"]
    assert jobs.ledger.spent == charged.cost and jobs.ledger.reserved == 0.0


def test_a_job_lost_on_every_attempt_costs_nothing(open_ledger):
    jobs = budgeted_jobs(open_ledger())
    charged = jobs.run("a", "k", 0, fails("lost", "node died"))
    assert charged.value is None and charged.cost == 0.0
    assert charged.failure.status == "lost" and len(charged.lost) == INFRASTRUCTURE_RETRIES + 1
    assert jobs.ledger.spent == 0.0 and jobs.ledger.reserved == 0.0
    assert not jobs.ledger.used("a")


def test_a_job_the_budget_cannot_cover_never_runs(open_ledger):
    jobs = budgeted_jobs(open_ledger(10.0))  # a first job is guessed at START_UP_GUESS_S = 15 s
    ran = []
    with pytest.raises(OutOfBudget, match="do not cover job a"):
        jobs.run("a", "k", 0, ran.append)
    assert ran == [] and jobs.ledger.store.entries() == []


def test_a_stopping_study_starts_no_job(open_ledger):
    jobs = budgeted_jobs(open_ledger())
    jobs.stopping.set()
    ran = []
    with pytest.raises(Paused):
        jobs.run("a", "k", 0, ran.append)
    assert ran == [] and jobs.ledger.store.entries() == []


def test_affordable_uses_the_estimates_run_would_reserve(open_ledger):
    jobs = budgeted_jobs(open_ledger(100.0))
    # cpu: 0.1 s a step and 15 s to start, before any job of the key was measured
    assert jobs.affordable([("k", 850)], with_check=False)  # 100 s
    assert not jobs.affordable([("k", 851)], with_check=False)
    assert jobs.affordable([("k", 700)])  # 85 s, and 15 s for its check job
    assert not jobs.affordable([("k", 701)])
    jobs.estimator.observe("k", 99.0)
    assert jobs.affordable([("k", 10_000)], with_check=False)  # measured costs win over the guess
    assert jobs.ledger.reserve("held", 2.0)
    assert not jobs.affordable([("k", 0)], with_check=False)  # what running jobs hold is not left


# ----------------------------------------------------------------------------- settling a crash


def test_settling_charges_what_a_crash_left_reserved_once(tmp_path):
    with KnowledgeBase(tmp_path / "knowledge.db", starter=None) as kb:
        study = kb.add_study("crashed", budget="1h")
        architecture = kb.add_architecture("a", "code", origin="llm", study_id=study.id)
        in_flight = kb.add_run(architecture.id, "mqar", study_id=study.id, status="running")
        never_admitted = kb.add_run(architecture.id, "mqar", study_id=study.id, status="running")
        ledger = ledger_in(kb, 3600.0, name=study.id)
        ledger.reserve(in_flight.id, 100.0)
        ledger.reserve("e00001-check-0", 10.0)
        reserved_at = {entry.job_id: entry.at for entry in ledger.store.entries()}
        last_write = tmp_path / "jobs" / f"{in_flight.id}-fit" / "out" / "metrics.jsonl"
        last_write.parent.mkdir(parents=True)
        last_write.write_text("{}\n")
        os.utime(last_write, (reserved_at[in_flight.id] + 7.0,) * 2)

        said = []
        settle_interrupted_jobs(ledger, kb, study.id, tmp_path / "jobs", said.append)
        assert ledger.outstanding() == {}
        charges = {entry.job_id: entry.seconds for entry in ledger.store.entries() if entry.op == "charge"}
        assert charges[in_flight.id] == pytest.approx(7.0)  # reservation to its last file
        assert charges["e00001-check-0"] == 0.0  # it wrote nothing: nothing can be shown to have run
        assert len(said) == 2 and all("settled interrupted job" in line for line in said)
        runs = {run.id: run for _, run in kb.study_runs(study.id)}
        cut_short, not_started = runs[in_flight.id], runs[never_admitted.id]
        assert cut_short.status == "failed" and "in progress" in cut_short.failure_reason
        assert cut_short.cost_device_seconds == charges[in_flight.id]
        assert not_started.status == "failed" and "before this run started" in not_started.failure_reason

        spent = ledger.spent
        settle_interrupted_jobs(ledger, kb, study.id, tmp_path / "jobs", said.append)
        assert ledger.spent == spent and len(said) == 2  # nothing is charged twice


# ----------------------------------------------------------------------------- status and report


def make_study(folder: Path, budget: str = "1h") -> tuple[StudyRecord, KnowledgeBase]:
    """A study folder as `discover run` leaves it: study.json, and knowledge.db with its Study row."""
    folder.mkdir(parents=True, exist_ok=True)
    kb = KnowledgeBase(folder / "knowledge.db", starter=None)
    study = kb.add_study("accounts", config={}, budget=budget)
    record = StudyRecord(
        study_id=study.id, heldout_seed=1, created_at="2025-01-01T00:00:00+00:00", budget=parse_budget(budget)
    )
    (folder / RECORD_FILE).write_text(record.model_dump_json(indent=2))
    return record, kb


def test_status_and_report_read_the_ledgers_own_figures(tmp_path):
    from discover.agents.status import study_status
    from discover.report.data import load_study

    folder = tmp_path / "study"
    record, kb = make_study(folder)
    with kb:
        architecture = kb.add_architecture("a", "code", origin="llm", study_id=record.study_id)
        interrupted = kb.add_run(
            architecture.id, "mqar", study_id=record.study_id, fidelity="screen", status="running"
        )
        ledger = Ledger(record.budget, DatabaseLedgerStore(kb, record.study_id))
        ledger.reserve("e00001-check-0", 10.0, key="check")  # a check job, charged
        ledger.charge("e00001-check-0", 4.0, 1)
        ledger.reserve("lost-then-ok", 20.0, key="mqar/screen")  # lost with its machine, retried
        ledger.release("lost-then-ok")
        ledger.reserve("lost-then-ok", 20.0, key="mqar/screen")
        ledger.charge("lost-then-ok", 3.0, 2)
        ledger.reserve("never-started", 5.0)  # released for good
        ledger.release("never-started")
        ledger.reserve("retried-running", 8.0)  # released, then its retry is still running
        ledger.release("retried-running")
        ledger.reserve(interrupted.id, 30.0, key="mqar/screen")  # a crash leaves it outstanding
        settle_interrupted_jobs(ledger, kb, record.study_id, folder / "jobs", lambda line: None)
        ledger.reserve("retried-running", 9.0)
        ledger.reserve("running", 11.0)

        assert ledger.spent == 10.0 and ledger.reserved == 20.0  # 4 + 6 + 0 (settled); 9 + 11
        status = study_status(folder)
        assert (status.spent_s, status.reserved_s) == (ledger.spent, ledger.reserved)
        assert (status.budget, status.budget_s, status.left_s) == ("1h", 3600.0, ledger.left)

        view = load_study(folder)
        assert (view.status.spent_s, view.status.reserved_s) == (ledger.spent, ledger.reserved)
        assert math.fsum(view.spend_s.values()) == ledger.spent
        assert view.spend_s == {"probes": 10.0, "screening": 0.0}  # jobs without a run are probes


def test_status_of_an_old_record_takes_the_budget_from_the_study(tmp_path):
    from discover.agents.status import study_status

    folder = tmp_path / "study"
    _, kb = make_study(folder, "90gpum")
    kb.close()
    old = json.loads((folder / RECORD_FILE).read_text())
    del old["budget"]  # study.json before it carried the budget
    (folder / RECORD_FILE).write_text(json.dumps(old))
    status = study_status(folder)
    assert (status.budget, status.budget_s, status.left_s) == ("90gpum", 5400.0, 5400.0)


def test_a_configured_budget_is_parsed_once_and_written_as_the_user_wrote_it():
    config = StudyConfig().with_overrides(budget="90gpum")
    assert config.budget == parse_budget("90gpum") and str(config.budget) == "90gpum"
    assert config.model_dump(mode="json")["budget"] == "90gpum"
    assert StudyConfig.model_validate(config.model_dump(mode="json")) == config
    record = StudyRecord(study_id="s", heldout_seed=1, created_at="now", budget=config.budget)
    assert json.loads(record.model_dump_json())["budget"] == "90gpum"
    assert StudyRecord.model_validate_json(record.model_dump_json()) == record
    for bad in ("lots", 5, "0h"):
        with pytest.raises(ConfigError, match=r"budget: budget .* 200gpuh"):
            StudyConfig().with_overrides(budget=bad)


# ----------------------------------------------------------------------------- estimates


def test_estimator_starts_from_default_then_follows_the_running_mean():
    estimator = CostEstimator(default_seconds=100.0)
    assert estimator.estimate("mqar/train") == pytest.approx(120.0)
    assert estimator.estimate("lm/train", default=500.0) == pytest.approx(600.0)

    estimator.observe("mqar/train", 50.0)
    assert estimator.estimate("mqar/train") == pytest.approx(60.0)
    estimator.observe("mqar/train", 70.0)
    estimator.observe("mqar/train", 90.0)
    assert estimator.mean("mqar/train") == pytest.approx(70.0)
    assert estimator.estimate("mqar/train") == pytest.approx(84.0)
    assert estimator.estimate("lm/train") == pytest.approx(120.0)  # other keys are untouched


def test_estimator_margin_is_configurable_and_checked():
    estimator = CostEstimator(default_seconds=10.0, margin=2.0)
    estimator.observe("k", 4.0)
    assert estimator.estimate("k") == 8.0
    with pytest.raises(ValueError):
        CostEstimator(default_seconds=0.0)
    with pytest.raises(ValueError):
        CostEstimator(default_seconds=1.0, margin=-1.0)
    with pytest.raises(ValueError):
        estimator.observe("k", math.nan)
    assert estimator.estimate("k") == 8.0


def test_estimator_resumes_from_ledger_costs(open_ledger):
    ledger = open_ledger()
    ledger.reserve("a", 10.0, key="mqar/train")
    ledger.charge("a", 4.0, 2)
    estimator = CostEstimator(default_seconds=100.0, margin=1.0)
    estimator.observe_all(ledger.costs())
    assert estimator.estimate("mqar/train") == 8.0


def test_an_allowance_is_the_estimate_and_a_share_of_the_rest(open_ledger):
    ledger = open_ledger(100.0)
    assert ledger.reserve_allowance("a", 10.0, share=0.5) == 55.0  # 10 + half of the 90 left
    assert ledger.reserve_allowance("b", 10.0, share=0.5) == 27.5  # 10 + half of the 35 left
    assert ledger.reserve_allowance("c", 20.0, share=1.0) == 0.0  # 17.5 left: refused, no trace
    assert ledger.reserve_allowance("c", 17.5, share=1.0) == 17.5
    assert ledger.left == 0.0  # reservations never exceed the budget, so neither can charges


def test_a_budgeted_job_must_end_when_its_allowance_is_spent(open_ledger):
    jobs = BudgetedJobs(
        open_ledger(100.0), CostEstimator(default_seconds=10.0, margin=1.0), DevicePool(["cpu:0", "cpu:1"])
    )
    slots: list[Slot] = []
    jobs.run("a", "k", 0, slots.append)
    allowance = 15.0 * 1.0 + (100.0 - 15.0) / 2  # first guess 15 s, and half of the rest: two slots
    assert slots[0].deadline - time.monotonic() == pytest.approx(allowance, abs=1.0)
    assert jobs.ledger.store.entries()[0].seconds == allowance


def test_a_first_estimate_scales_measured_fidelities_by_their_steps():
    estimator = CostEstimator(default_seconds=60.0, margin=1.0, steps={"mqar/screen": 100, "mqar/full": 400})
    assert estimator.estimate("mqar/full") == 60.0  # nothing measured yet
    estimator.observe("mqar/screen", 20.0)
    assert estimator.estimate("mqar/full") == 80.0  # 0.2 s a step, over 400 steps
    assert estimator.estimate("lm/full") == 60.0  # another task's jobs say nothing of this one
    estimator.observe("mqar/full", 50.0)
    assert estimator.estimate("mqar/full") == 50.0  # measured beats scaled
