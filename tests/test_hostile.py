"""Hostile candidates against the sandbox itself.

Each file in tests/hostile/ does one hostile thing; its docstring says what, and what must happen.
Every file runs through `Sandbox(..., static_check=False)` on each isolating backend (docker, bwrap),
so that the sandbox alone stands between it and the host. Each test asserts that the job ended within
its limit with a clear reason, or that the act had no effect; that the host is unchanged (no marker
file, no leaked secret); and that no container or process outlived the job. Afterwards the same
sandbox still trains an honest candidate. Last, the process backend refuses every hostile file, and
the static check refuses every one its rules can catch.

Acts that get through today are listed in KNOWN_HOLES, each with what happens. Such a test asserts
everything else first, then xfails at the one assertion the hole breaks; it fails outright once the
hole is fixed, so that the entry is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from torch import nn

import discover
import discover.experiments
import discover.sandbox
from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import StepLog, TrainResult
from discover.experiments.probes import Verdict
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import get_task
from discover.sandbox.base import JobOutcome, Limits
from discover.sandbox.cgroup import PREFIX, own_memory_cgroup
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import JobFailed, Sandbox
from discover.vetting.candidate import vet
from discover.vetting.static_check import static_check

HOSTILE = Path(__file__).parent / "hostile"
NAMES = sorted(path.stem for path in HOSTILE.glob("*.py"))
STUDY = f"hostile-{uuid.uuid4().hex[:8]}"
SETTINGS = {"steps": 3, "log_every": 1, "test_examples": 64}
# Their held-out sets are secret as MQAR's is (compression's logits come from a decoder the harness owns).
GENERATED_BESIDES_MQAR = ("noisy_recall", "fuzzy_recall", "selective_copy", "compression", "memorization")
LIMITS = Limits(timeout_s=60, memory_mb=1024, pids=64, cpus=1, scratch_mb=64, output_mb=8, log_kb=64)
# Files that can only end by being killed: they run in the background from the start of the module
# (one at a time per backend), while the other files run, and are checked last.
ENDLESS = ("forward_sleep", "import_loop", "forward_busy", "sigterm_ignore")
ENDLESS_LIMITS = LIMITS.model_copy(update={"timeout_s": 40})
ORDER = [name for name in NAMES if name not in ENDLESS] + [name for name in ENDLESS if name in NAMES]
MARGIN_S = 20.0  # start-up and teardown on a loaded machine, on top of the jobs' own limits
PORT = 47613  # net_connect.py dials this port on every address it tries; the test listens on it
SECRET_VAR = "DISCOVER_TEST_SECRET"
AS_ROOT = os.geteuid() == 0
# Where a file that got out would leave its discover-hostile-* marker on the host.
MARKER_DIRS = sorted(
    {
        "/",
        "/tmp",
        "/var/tmp",
        "/dev/shm",
        "/root",
        "/etc",
        "/usr",
        "/work",
        sys.prefix,
        os.path.dirname(os.__file__),
    }
    | {path for package in (discover, discover.experiments, discover.sandbox) for path in package.__path__}
)


def both(name: str, why: str) -> dict[tuple[str, str], str]:
    return {(name, "docker"): why, (name, "bwrap"): why}


# (file, backend) -> what gets through today. Details and suggested fixes: the suite's report.
KNOWN_HOLES: dict[tuple[str, str], str] = {}
if own_memory_cgroup() is None:  # root on a cgroup v1 host gives each bwrap job a cgroup (cgroup.py)
    KNOWN_HOLES[("memory_split", "bwrap")] = (
        "bwrap bounds memory per process (RLIMIT_AS), not per job: several processes together hold "
        "several times memory_mb"
    )
if not AS_ROOT:  # run by root, each job's /out is a tmpfs of output_mb (sandbox/quota.py)
    KNOWN_HOLES |= both("fill_out_dir", "output_mb bounds each file, not /out: many files fill the disk")


def expect(ok: bool, message: str, run: Run) -> None:
    """Assert `ok`, unless this (file, backend) is a known hole: then xfail, or fail once fixed."""
    hole = KNOWN_HOLES.get((run.name, run.backend))
    if hole is None:
        assert ok, message
    elif ok:
        pytest.fail(f"known hole no longer reproduces; remove it from KNOWN_HOLES: {hole}")
    else:
        pytest.xfail(f"KNOWN HOLE ({run.backend}): {hole} -- observed: {message}")


# -- running a hostile file


@dataclass
class Run:
    name: str
    backend: str
    sandbox: Sandbox
    job_id: str
    wall_s: float = 0.0
    outcome: JobOutcome | None = None  # the failure, when the sandbox raised JobFailed
    result: TrainResult | None = None
    verdict: Verdict | None = None
    hung: bool = False
    logs: list[StepLog] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.outcome.status if self.outcome else "ok"

    @property
    def reason(self) -> str:
        return self.outcome.reason if self.outcome else ""

    @property
    def log(self) -> str:
        return self.outcome.log_tail if self.outcome else ""

    @property
    def limits(self) -> Limits:
        return self.sandbox.limits

    def out(self, phase: str = "fit") -> Path:
        job_id = self.job_id if phase == "fit" else f"{self.job_id}-{phase}"
        return self.sandbox.workdir / job_id / "out"

    def job_ids(self) -> list[str]:
        return [path.name for path in self.sandbox.workdir.glob(f"{self.job_id}*")]

    @property
    def run_dir(self) -> Path:
        return self.sandbox.workdir.parent / "runs" / self.job_id


def new_job_id(name: str, sandbox: Sandbox) -> str:
    return f"{name}-{sandbox.backend.name}-{uuid.uuid4().hex[:6]}"


def train(
    sandbox: Sandbox, name: str, task: str = "mqar", settings: dict | None = None, job_id: str | None = None
) -> Run:
    run = Run(name, sandbox.backend.name, sandbox, job_id=job_id or new_job_id(name, sandbox))
    started = time.perf_counter()
    try:
        run.result = sandbox.train(
            vet(HOSTILE / f"{name}.py", trusted=False),
            RunSpec.resolve(task, settings or SETTINGS),
            job_id=run.job_id,
            run_dir=run.run_dir,
            on_log=run.logs.append,
        )
    except JobFailed as failure:
        run.outcome = failure.outcome
    run.wall_s = time.perf_counter() - started
    return run


def train_watched(sandbox: Sandbox, name: str) -> Run:
    """`train` in a thread, so that an orchestrator that hangs is reported instead of hanging the suite."""
    box: dict[str, Run] = {}
    worker = threading.Thread(target=lambda: box.setdefault("run", train(sandbox, name)), daemon=True)
    started = time.perf_counter()
    worker.start()
    worker.join(2 * sandbox.limits.timeout_s + MARGIN_S)
    if "run" in box:
        return box["run"]
    # Hung: free the orchestrator by opening every FIFO the job left for writing, then report.
    for fifo in sandbox.workdir.glob(f"{name}-*/out/*"):
        with contextlib.suppress(OSError):
            if stat.S_ISFIFO(fifo.lstat().st_mode):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    worker.join(10)
    run = box.get("run") or Run(name, sandbox.backend.name, sandbox, job_id=f"{name}-unknown")
    run.hung, run.wall_s = True, time.perf_counter() - started
    return run


class Study:
    """One sandbox per backend, shared by every test of this module (the study goes on)."""

    def __init__(self, root: Path, corpus: Path, lm_corpora: dict[str, dict]) -> None:
        self.root, self.corpus, self.lm_corpora = root, corpus, lm_corpora
        self.sandboxes: dict[tuple[str, float], Sandbox] = {}
        self.endless: dict[tuple[str, str], Future[Run]] = {}
        self.pool = ThreadPoolExecutor(max_workers=2)  # one endless job per backend at a time

    def sandbox(self, backend, limits: Limits = LIMITS) -> Sandbox:
        key = (backend.name, limits.timeout_s)
        if key not in self.sandboxes:
            workdir = self.root / backend.name / "jobs"
            self.sandboxes[key] = Sandbox(backend, workdir, limits, study_id=STUDY, static_check=False)
        return self.sandboxes[key]

    def start_endless(self, backend, names: list[str]) -> None:
        sandbox = self.sandbox(backend, ENDLESS_LIMITS)
        for name in names:
            if (backend.name, name) not in self.endless:
                self.endless[backend.name, name] = self.pool.submit(train, sandbox, name)

    def run(self, name: str, backend) -> Run:
        if name in ENDLESS:
            self.start_endless(backend, [name])  # started long ago, unless it was not foreseen
            return self.endless[backend.name, name].result()
        sandbox = self.sandbox(backend)
        if name == "fifo_metrics":
            return train_watched(sandbox, name)
        if name == "read_host_files":  # an lm job on a corpus holding a root-only file
            settings = {"corpus": str(self.corpus), "steps": 3, "seq_len": 32, "eval_windows": 4}
            return train(sandbox, name, "lm", settings)
        if name == "heldout_corpus":  # every corpus format: the run that read the most
            runs = [train(sandbox, name, "lm", settings) for settings in self.lm_corpora.values()]
            return max(runs, key=lambda run: int(re.search(r"read (\d+)", run.reason or "read 0")[1]))
        if name == "heldout_generated":  # every generated task besides MQAR: the run that scored best
            runs = [train(sandbox, name, task) for task in GENERATED_BESIDES_MQAR]
            failed = [run for run in runs if run.status != "ok"]
            return failed[0] if failed else max(runs, key=lambda run: run.result.value)
        if name == "heldout_lm":  # the default corpus: the standard library, inside every sandbox
            return train(
                sandbox, name, "lm", {"steps": 3, "seq_len": 64, "batch_size": 8, "eval_windows": 16}
            )
        if name == "fake_results":  # also a check job, whose verdict.json it forges
            started = time.perf_counter()
            job_id = new_job_id(name, sandbox)
            try:
                verdict = sandbox.check(
                    vet(HOSTILE / f"{name}.py", trusted=False),
                    RunSpec.resolve("mqar"),
                    job_id=f"{job_id}-check",
                )
            except JobFailed:
                verdict = None
            run = train(sandbox, name, job_id=job_id)
            run.verdict, run.wall_s = verdict, run.wall_s + time.perf_counter() - started
            return run
        return train(sandbox, name)


@pytest.fixture(scope="module")
def secret():
    value = f"secret-{uuid.uuid4().hex}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SECRET_VAR, value)
        yield value


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, str]:
    """A small lm corpus holding one file that only its owner may read."""
    folder = tmp_path_factory.mktemp("corpus")
    for index in range(12):
        (folder / f"text_{index}.py").write_text(f"value_{index} = {index}\n" * 200)
    value = f"root-only-{uuid.uuid4().hex}"
    private = folder / "discover-hostile-secret.txt"
    private.write_text(value)
    private.chmod(0o600)
    return folder, value


def lm_corpora(root: Path) -> dict[str, dict]:
    """The same small corpus in each format an lm study reads: settings for each."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from discover.experiments.tasks.lm_tokenizer import train_bpe

    texts = [f"line {i} of the corpus, " * 20 + "\n" for i in range(40)]
    (root / "text").mkdir()
    for i, text in enumerate(texts):
        (root / "text" / f"doc{i}.txt").write_text(text)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
    pq.write_table(pa.table({"text": texts}), root / "corpus.parquet")
    tokenizer = train_bpe([text.encode() for text in texts], 300, root / "tokenizer")
    (root / "shards").mkdir()
    for name, part in (("train_000.bin", texts[:30]), ("val_000.bin", texts[30:])):
        ids = [i for encoded in tokenizer.tokenizer.encode_batch(part) for i in encoded.ids]
        np.asarray(ids, dtype=np.uint16).tofile(root / "shards" / name)
    tiny = {"steps": 3, "seq_len": 32, "eval_windows": 4}
    benchmark = root / "answers.jsonl"  # zero-shot questions: the answers stay on the host
    benchmark.write_text('{"context": "line 1 of", "choices": [" the", " a"], "answer": 0}\n')
    return {
        "text": tiny | {"corpus": str(root / "text"), "corpus_glob": "*.txt"},
        "jsonl": tiny | {"corpus": str(root / "corpus.jsonl"), "zero_shot": [str(benchmark)]},
        "parquet": tiny | {"corpus": str(root / "corpus.parquet")},
        "tokens": tiny | {
            "corpus": str(root / "shards"), "train_files": "train_*.bin", "validation_files": "val_*.bin",
            "tokenizer": tokenizer.path, "vocab_size": 300,
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def study(request, tmp_path_factory, secret, corpus):
    study = Study(tmp_path_factory.mktemp("hostile"), corpus[0], lm_corpora(tmp_path_factory.mktemp("lm")))
    wanted: dict[str, list[str]] = {}  # backend -> endless files among the selected tests
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.originalname == "test_hostile_candidate" and params.get("name") in ENDLESS:
            wanted.setdefault(params["isolating_backend"], []).append(params["name"])
    for backend_name, names in wanted.items():
        try:
            backend = request.getfixturevalue(f"{backend_name}_backend")
        except (pytest.skip.Exception, pytest.fail.Exception):
            continue  # that backend's tests skip (or fail, in CI) on their own
        study.start_endless(backend, names)
    yield study
    study.pool.shutdown(wait=True)


class Listener:
    """TCP and UDP on every host address, port PORT: whatever reaches it is recorded."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for sock in (self.tcp, self.udp):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("0.0.0.0", PORT))
        except OSError as exc:
            pytest.fail(f"the test listener cannot bind port {PORT}: {exc}")
        self.tcp.listen(16)
        self.tcp.settimeout(0.2)
        self.udp.setblocking(False)
        self.contacts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, address = self.tcp.accept()
            except OSError:
                continue
            self.contacts.append(f"tcp from {address}")
            conn.close()

    def heard(self) -> list[str]:
        with contextlib.suppress(BlockingIOError):
            while True:
                data, address = self.udp.recvfrom(4096)
                self.contacts.append(f"udp from {address}: {data[:40]!r}")
        return list(self.contacts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.tcp.close()
        self.udp.close()


@pytest.fixture(scope="module")
def listener():
    listening = Listener()
    yield listening
    listening.close()


# -- what the host looks like afterwards


def host_markers() -> list[str]:
    return sorted(str(path) for folder in MARKER_DIRS for path in Path(folder).glob("discover-hostile*"))


def _processes() -> dict[int, str]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                found[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
    return found


def leftover_processes(run: Run) -> list[str]:
    """Processes of this run still alive: its bwrap (named by job folder), anything named after a hostile
    file, or a job process (docker or bwrap) whose /job/candidate.py is this hostile file. Waits up to 5 s."""
    source = (HOSTILE / f"{run.name}.py").read_bytes()
    deadline = time.monotonic() + 5
    while True:
        alive = []
        for pid, cmdline in _processes().items():
            if run.job_id in cmdline or f"discover-hostile-{run.name}" in cmdline:
                alive.append(f"{pid}: {cmdline[:120]}")
            elif "discover.experiments.job" in cmdline:
                with contextlib.suppress(OSError):
                    same_file = Path(f"/proc/{pid}/root/job/candidate.py").read_bytes() == source
                    # The same file may be running for the other backend: its mounts name its own job.
                    if same_file and run.job_id in Path(f"/proc/{pid}/mountinfo").read_text():
                        alive.append(f"{pid}: {cmdline[:120]}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def leftover_cgroups(run: Run) -> list[str]:
    """The job cgroups of this run's bwrap jobs that are still there (`cgroup.py`)."""
    parent = own_memory_cgroup()
    return sorted(path.name for path in parent.glob(f"{PREFIX}{STUDY}-{run.job_id}*")) if parent else []


def leftover_containers(job_ids: list[str] | None = None) -> list[str]:
    """Containers of this study (of these jobs, if given), plus any the docker_socket file started."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        client.ping()
    except Exception:
        return []  # no engine here, so nothing can be left in one
    labels = [f"discover.job={job}" for job in job_ids] if job_ids else [f"discover.study={STUDY}"]
    labels.append("discover.job=hostile-docker-socket")
    return sorted(
        {c.name for label in labels for c in client.containers.list(all=True, filters={"label": label})}
    )


# -- what each file must (not) achieve


VERIFY: dict[str, Callable[[Run, dict], None]] = {}


def verifies(*names: str):
    def register(check):
        for name in names:
            VERIFY[name] = check
        return check

    return register


def assert_failed(run: Run, words: str) -> None:
    assert run.status == "failed", f"expected a failed job, got {run.status}: {run.reason}"
    assert words in run.reason, f"reason lacks {words!r}: {run.reason}"


@verifies("net_connect")
def _no_network(run: Run, env: dict) -> None:
    assert_failed(run, "hostile network attempts")
    assert "CONNECTED" not in run.reason and "RESOLVED" not in run.reason, run.reason
    assert env["listener"].heard() == [], "the host listener was reached from inside the sandbox"


@verifies("env_secret")
def _no_secret(run: Run, env: dict) -> None:
    assert_failed(run, "secret not visible")  # and the secret is in no outcome (checked for every file)


@verifies("write_host_paths")
def _no_host_writes(run: Run, env: dict) -> None:
    assert_failed(run, "wrote markers in")  # any that reached the host are found by host_markers()


@verifies("read_host_files")
def _no_host_reads(run: Run, env: dict) -> None:
    assert_failed(run, "hostile: read")
    private = env["corpus_secret"]
    expect(private not in run.reason and "read 0 host files" in run.reason, run.reason, run)


@verifies("heldout_corpus")
def _validation_data_unreadable(run: Run, env: dict) -> None:
    assert_failed(run, "hostile: read")
    expect("read 0 validation files" in run.reason, run.reason, run)


@verifies("docker_socket")
def _no_engine(run: Run, env: dict) -> None:
    assert_failed(run, "docker socket attempts")
    assert "ENGINE ANSWERED" not in run.reason, run.reason


@verifies("fork_bomb")
def _bounded_processes(run: Run, env: dict) -> None:
    assert_failed(run, "processes started")
    started = int(re.search(r"hostile: (\d+) processes started", run.reason)[1])
    expect(started < run.limits.pids, f"{started} processes started under pids={run.limits.pids}", run)


@verifies("memory_bomb")
def _bounded_memory(run: Run, env: dict) -> None:
    assert run.status == "failed", run.reason
    assert "memory" in run.reason.lower(), f"the reason does not name memory: {run.reason}"
    assert "holding 256 MB" in run.log, "the bomb never started"


@verifies("memory_split")
def _bounded_total_memory(run: Run, env: dict) -> None:
    assert run.status == "failed", run.reason
    assert "memory" in run.reason.lower() or "children hold" in run.reason, run.reason
    held_file = run.out() / "held"
    held = int(held_file.read_text()) if held_file.is_file() else 0
    limit = run.limits.memory_mb
    expect(held <= limit, f"child processes held {held} MB together under memory_mb={limit}", run)


@verifies(*ENDLESS)
def _killed_at_the_limit(run: Run, env: dict) -> None:
    limit = run.limits.timeout_s
    assert run.status == "timeout", f"expected a timeout, got {run.status}: {run.reason}"
    assert run.reason == f"killed after the {limit:g} s time limit", run.reason
    assert "hostile:" in run.log, "the hostile act never started, so the limit proved nothing"
    assert limit <= run.outcome.wall_time_s <= limit + MARGIN_S, run.outcome.wall_time_s
    if run.name == "sigterm_ignore":
        assert "ignoring SIGTERM" in run.log


@verifies("detached_child")
def _no_survivor(run: Run, env: dict) -> None:
    assert_failed(run, "detached grandchild")
    time.sleep(3)  # a grandchild that outlived the job's main process by 1 s has written by now
    assert not (run.out() / "late-marker").exists(), "a process outlived its job and wrote to /out"


@verifies("stdout_flood")
def _capped_log(run: Run, env: dict) -> None:
    assert_failed(run, "wrote 110 MB")
    assert len(run.log.encode()) <= run.limits.log_kb * 1024, len(run.log)


@verifies("fake_results")
def _no_forgery(run: Run, env: dict) -> None:
    forged = []
    if run.verdict is not None and run.verdict.passed:
        forged.append("a passing verdict for a mixer that reads the future")
    if run.result is not None and run.result.value == 1.0:
        forged.append(f"accuracy {run.result.value}")
    expect(not forged, "reported forged " + ", ".join(forged), run)


class _OneLinearMixer(nn.Module):  # forge_fit_summary.py's mixer, built here without its import code
    def __init__(self, d_model: int, num_heads: int = 4, **kwargs) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, d_model)


def _params_of_one_linear_mixer() -> int:
    task = get_task("mqar")
    return sum(p.numel() for p in task.build_model(_OneLinearMixer, task.config(SETTINGS)).parameters())


@verifies("forge_fit_summary")
def _measured_outside(run: Run, env: dict) -> None:
    if run.status == "failed":  # the thread truncated fit.json as the job exited: nothing reported
        assert run.reason.startswith("fit.json does not match its schema"), run.reason
        assert run.result is None and not (run.run_dir / "result.json").exists()
        return
    assert run.status == "ok", run.reason
    # Whether or not the thread won its race against the job's exit, these are not fit.json's.
    assert run.result.params == _params_of_one_linear_mixer(), run.result.params
    assert run.result.tokens_per_s < 1e9, run.result.tokens_per_s
    assert run.result.peak_memory_mb > 50, run.result.peak_memory_mb  # Python and torch alone hold more


@verifies("patch_torch_metric")
def _guarded_evaluation(run: Run, env: dict) -> None:
    # The fit job's guard notices before fit.json is written: no patched number leaves the job.
    assert run.status == "failed" and run.outcome.job_id == run.job_id, (run.outcome.job_id, run.reason)
    assert run.reason.startswith("candidate code modified the evaluation runtime"), run.reason
    assert "cross_entropy" in run.reason, run.reason
    assert not (run.out() / "fit.json").exists()


@verifies("patch_task_evaluate", "heldout_mqar")
def _honest_score(run: Run, env: dict) -> None:
    assert run.status in ("ok", "failed"), run.reason
    value = run.result.value if run.result else None
    expect(value is None or value < 1.0, f"reported accuracy {value} after 3 training steps", run)


@verifies("heldout_generated")
def _secret_generated_set(run: Run, env: dict) -> None:
    # The job must end well: a file that crashed before pushing its answers would prove nothing.
    assert run.status == "ok", run.reason
    value = run.result.value
    expect(value < 1.0, f"reported accuracy {value} after 3 training steps", run)


@verifies("heldout_lm")
def _heldout_text_unreadable(run: Run, env: dict) -> None:
    assert run.status == "ok", run.reason
    bits = run.result.value
    # An honest model after 3 steps is near 8 bits per byte; reading the text gave 2.1.
    expect(bits > 4.0, f"{bits:.2f} bits per byte after 3 training steps", run)


@verifies("peek_when_predicting", "peek_with_memory")
def _causal_audit(run: Run, env: dict) -> None:
    assert_failed(run, "the predictions read the future")
    assert run.outcome.job_id.endswith("-audit"), run.outcome.job_id


@verifies("fill_scratch")
def _bounded_scratch(run: Run, env: dict) -> None:
    assert_failed(run, "No space left on device")
    written = int(re.search(r"scratch full after (\d+) MB", run.reason)[1])
    assert written <= run.limits.scratch_mb, run.reason


@verifies("fill_out_dir")
def _bounded_output(run: Run, env: dict) -> None:
    # Bounded in total, the folder fills up and the job fails on it (even its error.json may not fit).
    assert_failed(run, "into /out" if not AS_ROOT else "No space left on device")
    files = [path for path in run.out().iterdir() if path.is_file()]
    size_mb = sum(path.stat().st_size for path in files) / 2**20
    for path in files:  # give the disk back before anything else
        if path.name.startswith("fill-"):
            path.unlink()
    limit = run.limits.output_mb
    expect(size_mb <= limit + 1, f"the job left {size_mb:.0f} MB in /out under output_mb={limit}", run)


@verifies("scratch_elsewhere")
def _no_other_scratch(run: Run, env: dict) -> None:
    assert_failed(run, "scratch elsewhere")
    written = {place: int(mb) for place, mb in re.findall(r"(\S+)=(\d+)", run.reason)}
    unbounded = {place: mb for place, mb in written.items() if mb > run.limits.scratch_mb}
    assert not unbounded, f"MB written beyond scratch_mb={run.limits.scratch_mb}: {unbounded}"


@verifies("symlink_fit")
def _refused_link(run: Run, env: dict) -> None:
    assert_failed(run, "the job wrote no fit.json")
    assert (run.out() / "fit.json").is_symlink(), "the act did not happen"
    assert not (run.sandbox.workdir / f"{run.job_id}-predict").exists(), "the predict job was prepared"


@verifies("symlink_weights")
def _refused_weights(run: Run, env: dict) -> None:
    assert_failed(run, "the job wrote no weights")
    assert (run.out() / "weights.pt").is_symlink(), "the act did not happen"
    assert not (run.sandbox.workdir / f"{run.job_id}-predict").exists(), "the predict job was prepared"


@verifies("symlink_metrics")
def _no_host_file_in_run(run: Run, env: dict) -> None:
    if run.status != "ok":  # the harness itself may trip over the link; then the reason must say so
        assert run.status == "failed" and "metrics.jsonl" in run.reason, run.reason
    copied = run.run_dir / "metrics.jsonl"
    if copied.exists():
        assert not copied.is_symlink()
        for line in copied.read_text().splitlines():
            StepLog.model_validate_json(line)


@verifies("pickle_weights")
def _no_unpickling(run: Run, env: dict) -> None:
    assert_failed(run, "weights.pt is not a saved state dict")
    assert b"system" in (run.out() / "weights.pt").read_bytes(), "the payload was not planted"
    assert run.outcome.job_id == run.job_id, run.outcome.job_id  # refused before any predict job
    assert not (run.out() / "pickle-ran").exists(), "the pickle payload ran"


@verifies("kill_parent")
def _nothing_outside_killed(run: Run, env: dict) -> None:
    # Under bwrap run by a normal user the watchdog is the job's user too: killing it ends the job.
    killed_watchdog = run.backend == "bwrap" and not AS_ROOT
    assert_failed(run, "the process that watches the job was killed" if killed_watchdog else "kill attempts")
    if run.backend == "docker":
        run.sandbox.backend.client.ping()  # the engine is alive


@verifies("write_job_dir")
def _job_dir_unchanged(run: Run, env: dict) -> None:
    assert_failed(run, "/job attempts")
    assert "DONE" not in run.reason, run.reason
    job_dir = run.sandbox.workdir / run.job_id / "job"
    assert (job_dir / "candidate.py").read_bytes() == (HOSTILE / "write_job_dir.py").read_bytes()
    assert json.loads((job_dir / "job.json").read_text())["settings"] == SETTINGS
    assert sorted(path.name for path in job_dir.iterdir()) == ["candidate.py", "job.json"]


@verifies("fifo_metrics")
def _orchestrator_never_hangs(run: Run, env: dict) -> None:
    assert not run.hung, "Sandbox.train hung on a FIFO the job put in place of metrics.jsonl"
    assert run.status in ("ok", "failed", "timeout"), run.reason
    if run.status != "ok":
        assert run.reason, "a failure without a reason"


@verifies("setuid_out")
def _no_setuid_left(run: Run, env: dict) -> None:
    assert_failed(run, "planted")
    planted = run.out() / "discover-hostile-setuid"
    info = planted.lstat()
    special = info.st_mode & (stat.S_ISUID | stat.S_ISGID)
    planted.chmod(0o644)  # never leave a set-user-ID file behind, whatever the verdict
    message = f"{planted} is {stat.filemode(info.st_mode)}, owned by uid {info.st_uid}"
    expect(not special, message, run)


def test_every_hostile_file_is_verified():
    assert len(NAMES) >= 16
    assert set(VERIFY) == set(NAMES)


@pytest.mark.parametrize("name", ORDER)
def test_hostile_candidate(name, isolating_backend, study, listener, secret, corpus):
    run = study.run(name, isolating_backend)
    print(f"{run.backend} {name}: {run.status} after {run.wall_s:.1f} s: {run.reason[:200]}")  # -s shows it
    # The host and the study are unharmed, whatever the file did.
    assert secret not in run.reason + run.log, "the host's secret environment reached the job"
    assert host_markers() == [], "a hostile file left a marker on the host"
    assert leftover_processes(run) == [], "processes outlived the job"
    assert leftover_containers(run.job_ids()) == [], "containers outlived the job"
    assert leftover_cgroups(run) == [], "memory cgroups outlived the job"
    jobs = max(1, len(run.job_ids()))
    assert run.wall_s <= jobs * run.limits.timeout_s + MARGIN_S, f"{run.wall_s:.0f} s for {jobs} job(s)"
    VERIFY[name](run, {"listener": listener, "corpus_secret": corpus[1]})


def test_the_study_goes_on(isolating_backend, study):
    """After every hostile file above, the very same sandbox still trains an honest candidate."""
    sandbox = study.sandbox(isolating_backend)
    result = sandbox.train(
        vet(builtin_baselines()["gated_deltanet"], trusted=False), RunSpec.resolve("mqar", SETTINGS)
    )
    assert result.status == "ok" and 0.0 <= result.value <= 1.0
    assert leftover_containers() == []
    assert host_markers() == []


@pytest.mark.parametrize("name", NAMES)
def test_process_backend_refuses_hostile_files(name, tmp_path):
    sandbox = Sandbox(ProcessBackend(), tmp_path / "jobs", LIMITS, static_check=False)
    with pytest.raises(JobFailed) as failure:
        sandbox.train(vet(HOSTILE / f"{name}.py", trusted=False), RunSpec.resolve("mqar", SETTINGS))
    assert failure.value.outcome.status == "refused"
    assert "trusted code" in failure.value.outcome.reason
    assert not list((tmp_path / "jobs").glob("*/out/*"))  # nothing ran


# What no static rule can tell from an honest mixer: pure tensor arithmetic in forward. Only the
# sandbox's limits and the causal audit stop these; the tests above show that they do. (A memory
# bomb written as tensor allocations in forward would be another; memory_bomb.py allocates at
# import, which the check refuses.)
BEYOND_STATIC_CHECK = {
    "forward_busy": "a busy loop of plain torch arithmetic inside forward",
    "peek_when_predicting": "reading ahead only when gradients are off (the causal audit catches it)",
    "peek_with_memory": "reading ahead, matching rows it saw earlier (the audit's own job catches it)",
}


def test_static_check_cannot_see_pure_tensor_tricks():
    # Stated as a fact, so that a future rule that does catch them shows up here; the tests above
    # prove the time limit and the causal audit end them on every backend.
    for name in BEYOND_STATIC_CHECK:
        assert static_check((HOSTILE / f"{name}.py").read_text()) == []


@pytest.mark.parametrize("name", [n for n in NAMES if n not in BEYOND_STATIC_CHECK])
def test_static_check_refuses_hostile_files(name, tmp_path):
    # The process backend refuses untrusted code, so a file the check let through still never runs.
    sandbox = Sandbox(ProcessBackend(), tmp_path / "jobs", LIMITS)
    candidate = vet(HOSTILE / f"{name}.py", trusted=False)
    with pytest.raises(JobFailed) as failure:
        sandbox.train(candidate, RunSpec.resolve("mqar", SETTINGS))
    assert failure.value.outcome.status == "refused"
    assert failure.value.outcome.reason.startswith("static check"), failure.value.outcome.reason
    assert not (tmp_path / "jobs").exists()  # refused before a job folder was written
    verdict = sandbox.check(candidate, RunSpec.resolve("mqar"))
    assert not verdict.passed and verdict.probes[0].name == "static_check"
