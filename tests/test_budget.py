"""The budget: parsing, ledger arithmetic, persistence across processes and kills, estimates."""

import json
import math
import multiprocessing
import os
import random
import signal
import time

import pytest

from discover.sandbox.budget import (
    Budget,
    BudgetError,
    CostEstimator,
    JsonlLedgerStore,
    Ledger,
    LedgerEntry,
    LedgerError,
    parse_budget,
)

# fork: workers start in milliseconds with this module already imported (spawn would re-import it
# per worker, seconds on a busy machine). Each worker opens the ledger file itself, so the locking
# under test is between separate processes and separate open files, as between `discover` runs.
FORK = multiprocessing.get_context("fork")


def open_ledger(path, seconds: float = 100.0) -> Ledger:
    return Ledger(Budget(text=f"{seconds}s", device_seconds=seconds), JsonlLedgerStore(path))


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


def test_reserve_charge_release_arithmetic(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl", 100.0)
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


def test_reservation_must_fit_in_what_is_left(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path, 100.0)
    assert ledger.reserve("a", 60.0)
    lines_before = path.read_text()

    assert not ledger.reserve("b", 40.000001)
    assert ledger.outstanding() == {"a": 60.0}
    assert path.read_text() == lines_before  # a refused job leaves no trace

    assert ledger.reserve("b", 40.0)  # exactly what is left fits
    assert ledger.left == 0.0
    assert not ledger.reserve("c", 1e-9)

    ledger.release("b")
    assert ledger.reserve("c", 40.0)  # "c" was refused before, so its id is still free


def test_failure_is_charged_by_what_it_used(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl", 100.0)
    assert ledger.reserve("crashes-early", 50.0)
    assert ledger.reserve("overruns", 10.0)
    ledger.charge("crashes-early", wall_seconds=3.0, devices=1)
    ledger.charge("overruns", wall_seconds=12.5, devices=2)  # used more than it reserved
    assert ledger.spent == 28.0
    assert ledger.left == 72.0


def test_overspending_blocks_further_reservations(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl", 10.0)
    assert ledger.reserve("a", 10.0)
    ledger.charge("a", wall_seconds=15.0, devices=1)
    assert ledger.left == -5.0
    assert not ledger.reserve("b", 0.5)


def test_unknown_or_settled_jobs_cannot_be_settled(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl", 100.0)
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


def test_a_released_job_may_be_reserved_again_and_is_charged_once(tmp_path):
    """A job lost with its machine is released and retried under the same id."""
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path, 100.0)
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
    assert open_ledger(path, 100.0).spent == 3.0  # the replay agrees


@pytest.mark.parametrize("estimate", [0.0, -1.0, math.nan, math.inf])
def test_bad_estimates_are_refused_loudly(tmp_path, estimate):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(ValueError, match="estimate"):
        ledger.reserve("a", estimate)


@pytest.mark.parametrize("wall, devices", [(-1.0, 1), (math.nan, 1), (1.0, 0), (1.0, 1.5), (1.0, True)])
def test_bad_measurements_are_refused_loudly(tmp_path, wall, devices):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    assert ledger.reserve("a", 1.0)
    with pytest.raises(ValueError):
        ledger.charge("a", wall, devices)
    assert ledger.outstanding() == {"a": 1.0}


def test_charges_sum_exactly_to_measured_use(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path, 1e9)
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
    charges = [entry.seconds for entry in JsonlLedgerStore(path).entries() if entry.op == "charge"]
    assert charges == measured  # every charge is wall * devices, bit for bit, through the file
    assert open_ledger(path, 1e9).spent == math.fsum(measured)


# ----------------------------------------------------------------------------- persistence


def test_replay_after_reopening(tmp_path):
    path = tmp_path / "runs" / "ledger.jsonl"  # the folder is created
    first = open_ledger(path, 100.0)
    first.reserve("a", 30.0, key="mqar/train")
    first.reserve("b", 20.0)
    first.reserve("c", 5.0)
    first.charge("a", 12.0, 2)
    first.release("c")

    again = open_ledger(path, 100.0)
    assert again.spent == 24.0
    assert again.outstanding() == {"b": 20.0}
    assert again.left == 56.0
    assert again.costs() == [("mqar/train", 24.0)]
    again.charge("b", 1.0, 1)  # the resumed ledger settles what the first one reserved
    with pytest.raises(LedgerError):
        again.release("c")
    assert first.spent == 25.0  # and the first sees it


def test_every_line_is_one_json_object(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path)
    ledger.reserve("a", 3.0, key="lm/train")
    ledger.charge("a", 1.5, 2)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["op"] for row in rows] == ["reserve", "charge"]
    assert rows[1] | {"at": 0} == {
        "op": "charge", "job_id": "a", "seconds": 3.0, "wall_seconds": 1.5, "devices": 2,
        "key": "lm/train", "at": 0,
    }  # fmt: skip


def test_torn_last_line_is_ignored_then_cut_off(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path)
    ledger.reserve("a", 3.0)
    with path.open("a") as file:  # what a writer killed inside write() could leave behind
        file.write('{"op": "charge", "job_id": "a", "sec')

    resumed = open_ledger(path)
    assert resumed.outstanding() == {"a": 3.0}
    resumed.charge("a", 1.0, 1)
    assert open_ledger(path).spent == 1.0
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_damage_inside_the_file_is_reported_with_its_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = open_ledger(path)
    ledger.reserve("a", 3.0)
    with path.open("a") as file:
        file.write("not json\n")
    with pytest.raises(LedgerError, match="line 2 is damaged"):
        open_ledger(path)
    store = JsonlLedgerStore(path)
    for _ in range(2):  # it stays reported, at the same line, and nothing is half-read
        with pytest.raises(LedgerError, match="line 2 is damaged"):
            store.entries()
    with pytest.raises(LedgerError, match="line 2 is damaged"):
        store.append(LedgerEntry(op="reserve", job_id="b", seconds=1.0))
    assert path.read_text().count("\n") == 2  # a damaged ledger takes no more entries


def test_inconsistent_history_is_reported(tmp_path):
    store = JsonlLedgerStore(tmp_path / "ledger.jsonl")
    store.append(LedgerEntry(op="charge", job_id="never-reserved", seconds=1.0, wall_seconds=1.0, devices=1))
    with pytest.raises(LedgerError, match="inconsistent"):
        Ledger(Budget(text="1h", device_seconds=3600), store)


def write_forever(path: str, done) -> None:
    """Reserve and charge jobs until killed; `done` counts the jobs whose charge returned."""
    ledger = open_ledger(path, 1e12)
    for index in range(1_000_000):
        ledger.reserve(f"job-{index}", 2.0)
        ledger.charge(f"job-{index}", 0.5, 3)
        done.value = index + 1


def test_kill_9_mid_stream_loses_nothing_that_returned(tmp_path):
    path = tmp_path / "ledger.jsonl"
    done = FORK.Value("q", 0, lock=False)  # no lock: the child may die at any instruction
    writer = FORK.Process(target=write_forever, args=(str(path), done))
    writer.start()
    deadline = time.monotonic() + 20
    while done.value < 15 and writer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert writer.exitcode == -signal.SIGKILL
    finished = done.value
    assert finished >= 15

    ledger = open_ledger(path, 1e12)  # the file replays cleanly
    on_file = {entry.job_id for entry in JsonlLedgerStore(path).entries() if entry.op == "charge"}
    returned = {f"job-{index}" for index in range(finished)}
    assert returned <= on_file  # every charge that returned is on file ...
    assert len(on_file - returned) <= 1  # ... plus at most the one in flight
    assert len(ledger.outstanding()) <= 1
    assert ledger.spent == 1.5 * len(on_file)
    assert ledger.reserve("after-the-crash", 1.0)  # and it takes new entries


# (budget, attempts per worker) of each round: 3 s jobs, so budget // 3 fit. The small rounds put
# every racer at the budget's edge at once; the large one makes them interleave for a while.
ROUNDS = [(10.0, 4), (10.0, 4), (10.0, 4), (14.0, 4), (100.0, 15)]


def race_to_reserve(folder: str, start, admitted, worker: int) -> None:
    try:
        for number, (total, attempts) in enumerate(ROUNDS):
            ledger = open_ledger(f"{folder}/round-{number}.jsonl", total)
            start.wait(timeout=30)  # every racer begins each round together
            jobs = (f"w{worker}-{k}" for k in range(attempts))
            admitted[number * 4 + worker] = sum(ledger.reserve(job, 3.0) for job in jobs)
    except BaseException:
        start.abort()  # so the other racers fail fast instead of waiting for this one
        raise


def test_concurrent_processes_never_over_commit(tmp_path):
    workers = 4
    start = FORK.Barrier(workers)
    admitted = FORK.Array("i", len(ROUNDS) * workers, lock=False)
    racers = [
        FORK.Process(target=race_to_reserve, args=(str(tmp_path), start, admitted, worker))
        for worker in range(workers)
    ]
    for racer in racers:
        racer.start()
    try:
        for racer in racers:
            racer.join(timeout=60)
            assert racer.exitcode == 0
    finally:
        for racer in racers:
            racer.kill()  # a no-op for those that finished

    for number, (total, _) in enumerate(ROUNDS):
        path = tmp_path / f"round-{number}.jsonl"
        fit = int(total // 3)
        assert sum(admitted[number * 4 : number * 4 + 4]) == fit  # no more let in, none lost
        ledger = open_ledger(path, total)
        assert len(ledger.outstanding()) == fit
        assert ledger.reserved == 3.0 * fit
        committed = 0.0
        for entry in JsonlLedgerStore(path).entries():  # at no point in the history was it over
            committed += entry.seconds
            assert committed <= total


def test_threads_sharing_one_ledger_never_over_commit(tmp_path):
    import threading

    ledger = open_ledger(tmp_path / "ledger.jsonl", 50.0)
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


def test_estimator_resumes_from_ledger_costs(tmp_path):
    ledger = open_ledger(tmp_path / "ledger.jsonl")
    ledger.reserve("a", 10.0, key="mqar/train")
    ledger.charge("a", 4.0, 2)
    estimator = CostEstimator(default_seconds=100.0, margin=1.0)
    for key, seconds in ledger.costs():
        estimator.observe(key, seconds)
    assert estimator.estimate("mqar/train") == 8.0
