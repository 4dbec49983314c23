"""Sandboxed jobs give the same answers as the harness, on every backend, and untrusted code
never reaches the unisolated backend."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from discover.experiments.baselines import builtin_baselines
from discover.experiments.harness import train
from discover.experiments.runspec import RunSpec
from discover.experiments.tasks import get_task
from discover.sandbox.base import Limits
from discover.sandbox.cgroup import JobCgroup, own_memory_cgroup
from discover.sandbox.process import ProcessBackend
from discover.sandbox.runner import JobFailed, Sandbox
from discover.vetting.candidate import vet

from .conftest import CANDIDATES, require

TINY = {"steps": 6, "log_every": 3, "test_examples": 64, "warmup_steps": 2}
LIMITS = Limits(timeout_s=300, memory_mb=4096)


@pytest.fixture(params=["process", "docker", "bwrap"])
def any_backend(request):
    if request.param == "process":
        return ProcessBackend()
    return request.getfixturevalue(f"{request.param}_backend")


def test_sandboxed_training_matches_the_in_process_harness(any_backend, tmp_path):
    candidate = builtin_baselines()["gated_deltanet"]
    task = get_task("mqar")
    # The same held-out set as the in-process run: its seed, which no job is told.
    sandbox = Sandbox(any_backend, tmp_path / "jobs", LIMITS, heldout_seed=task.config(TINY).test_seed)
    result = sandbox.train(
        vet(candidate, trusted=True), RunSpec.resolve("mqar", TINY, seed=5), run_dir=tmp_path / "run"
    )
    direct = train(candidate, task, task.config(TINY), seed=5)
    assert result.status == "ok" and result.metric == "accuracy"
    assert result.final_train_loss == pytest.approx(direct.final_train_loss, rel=1e-4)
    assert result.metrics == pytest.approx(direct.metrics, rel=1e-4)
    assert json.loads((tmp_path / "run/result.json").read_text())["value"] == result.value
    assert len((tmp_path / "run/metrics.jsonl").read_text().splitlines()) == 2


def test_peak_memory_is_measured_outside_the_job(any_backend, tmp_path):
    """The kernel's account of the job, not fit.json's claim: the two agree for an honest job."""
    sandbox = Sandbox(any_backend, tmp_path, LIMITS)
    settings = {**TINY, "n_layers": 2}  # two mixers: 512 MB of ballast
    result = sandbox.train(
        vet(CANDIDATES / "holds_memory.py", trusted=True), RunSpec.resolve("mqar", settings), job_id="ballast"
    )
    claimed = json.loads((tmp_path / "ballast/out/fit.json").read_text())["peak_memory_mb"]
    assert 512 < result.peak_memory_mb < 2048, result.peak_memory_mb
    assert result.peak_memory_mb == pytest.approx(claimed, rel=0.05)


def test_the_held_out_seed_is_secret_and_changes_the_held_out_set(tmp_path):
    candidate = vet(builtin_baselines()["linear_attention"], trusted=True)
    settings = {**TINY, "test_examples": 512}
    first = Sandbox(ProcessBackend(), tmp_path / "a", LIMITS).train(
        candidate, RunSpec.resolve("mqar", settings)
    )
    second = Sandbox(ProcessBackend(), tmp_path / "b", LIMITS).train(
        candidate, RunSpec.resolve("mqar", settings)
    )
    assert first.metrics["loss"] != second.metrics["loss"]  # same weights, other held-out examples
    spec = json.loads(next((tmp_path / "a").glob("*-predict/job/job.json")).read_text())
    assert "test_seed" not in spec["settings"]


def test_sandboxed_check_names_the_failed_probe(isolating_backend, tmp_path):
    sandbox = Sandbox(isolating_backend, tmp_path, LIMITS)
    assert sandbox.check(vet(builtin_baselines()["retention"], trusted=True), RunSpec.resolve("mqar")).passed
    verdict = sandbox.check(vet(CANDIDATES / "reads_future.py", trusted=False), RunSpec.resolve("mqar"))
    assert [p.name for p in verdict.failures()] == ["causality"]


def test_process_backend_refuses_untrusted_code(tmp_path):
    sandbox = Sandbox(ProcessBackend(), tmp_path, LIMITS)
    with pytest.raises(JobFailed) as failure:
        sandbox.check(vet(CANDIDATES / "weak_short_conv.py", trusted=False), RunSpec.resolve("mqar"))
    assert failure.value.outcome.status == "refused"
    assert "only trusted code" in failure.value.outcome.reason
    opted_in = Sandbox(ProcessBackend(allow_untrusted=True), tmp_path, LIMITS)
    assert opted_in.check(
        vet(CANDIDATES / "weak_short_conv.py", trusted=False), RunSpec.resolve("mqar")
    ).passed


def test_static_check_refuses_before_anything_runs(isolating_backend, tmp_path):
    patcher = tmp_path / "patcher.py"
    source = (CANDIDATES / "weak_short_conv.py").read_text()
    patcher.write_text(source + "\n\nF.cross_entropy = lambda *args, **kwargs: 0\n")
    sandbox = Sandbox(isolating_backend, tmp_path / "jobs", LIMITS)
    with pytest.raises(JobFailed) as failure:
        sandbox.train(vet(patcher, trusted=False), RunSpec.resolve("mqar", TINY))
    assert failure.value.outcome.status == "refused"
    assert failure.value.outcome.reason.startswith("static check")
    assert not (tmp_path / "jobs").exists()  # refused before a job folder was even written


def test_a_custom_corpus_trains_inside_the_sandbox(isolating_backend, tmp_path):
    """The job reads the prepared training tokens, shown to it read-only; not the corpus.

    Ten steps without warm-up take a byte model well below the 8 bits of a uniform guess (about 6 here),
    which only happens if it trained on the corpus. (Three steps inside the default warm-up moved it
    by a few hundredths, on either side of 8.)
    """
    corpus = tmp_path / "corpus"
    shutil.copytree(Path(__file__).parent.parent / "experiments", corpus)  # any folder of .py text
    settings = {
        "corpus": str(corpus),
        "steps": 10,
        "warmup_steps": 0,
        "log_every": 10,
        "seq_len": 32,
        "eval_windows": 4,
    }
    sandbox = Sandbox(isolating_backend, tmp_path / "jobs", LIMITS)
    result = sandbox.train(
        vet(builtin_baselines()["linear_attention"], trusted=True), RunSpec.resolve("lm", settings)
    )
    assert result.status == "ok" and 0 < result.value < 7


SUPERVISOR = """
import sys
from pathlib import Path
from discover.sandbox.base import Job, Limits, prepare_job_dir
from discover.sandbox.docker import DockerBackend
job = Job(job_id=sys.argv[1], action="check", task="mqar", limits=Limits(timeout_s=3, memory_mb=2048))
job_dir, out_dir = prepare_job_dir(job, Path(sys.argv[2]).read_text(), Path(sys.argv[3]))
DockerBackend().execute(job, job_dir, out_dir)
"""


def test_a_container_stops_at_its_limit_when_discover_is_gone(docker_backend, tmp_path):
    """Its watchdog (PID 1) ends a job that sleeps forever, though the process that started the
    container was killed and cannot enforce the time limit any more."""
    import subprocess
    import sys
    import time
    import uuid

    job_id = f"orphan-{uuid.uuid4().hex[:8]}"
    hostile = Path(__file__).parent / "hostile" / "forward_sleep.py"
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, job_id, str(hostile), str(tmp_path)])

    def running() -> list[str]:
        listed = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=discover.job={job_id}"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return listed.stdout.split()

    try:
        deadline = time.monotonic() + 60
        while not running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(), "the job's container never started"
        supervisor.kill()  # kill -9: nothing of discover is left to stop the container
        supervisor.wait()
        killed = time.monotonic()
        while running() and time.monotonic() < killed + 60:
            time.sleep(0.5)
        assert not running(), "the container outlived its time limit with nobody watching"
        assert time.monotonic() - killed < 3 + 10 + 15  # the limit, the watchdog's margin, start-up
    finally:
        docker_backend.reap(job_id=job_id)


def test_a_killed_runs_job_cgroups_are_reaped_unless_in_use(bwrap_backend):
    """A bwrap job's memory cgroup is removed when the job ends; if discover itself was killed, the
    study's next start removes what is left, but never a cgroup a running job is in."""
    # CI runs as root on a cgroup v1 host, so there this must run; elsewhere it may not.
    require(own_memory_cgroup() is not None, "memory cgroups need root and a cgroup v1 host")
    left = JobCgroup.create("reap-test", "killed", memory_mb=64)
    busy = JobCgroup.create("reap-test", "running", memory_mb=64)
    assert left is not None and busy is not None
    process = subprocess.Popen(["sleep", "30"])
    try:
        busy.procs.write_text(str(process.pid))
        assert bwrap_backend.reap("reap-test") == 1
        assert not left.folder.exists() and busy.folder.exists()
    finally:
        process.kill()
        process.wait()
        busy.remove()
    assert not busy.folder.exists()


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["process", "bwrap"])
def test_a_compiled_fit_passes_the_integrity_guard(backend_name, request, tmp_path):
    """torch.compile (the GPU preset's option) patches nn.Module and imports lazily; the job's
    guard must tell that apart from a candidate's tampering. CPU inductor is the same code path."""
    backend = ProcessBackend() if backend_name == "process" else request.getfixturevalue("bwrap_backend")
    sandbox = Sandbox(backend, tmp_path / "jobs", LIMITS)
    settings = {**TINY, "steps": 4, "log_every": 2, "compile": True}
    result = sandbox.train(
        vet(builtin_baselines()["deltanet"], trusted=True), RunSpec.resolve("mqar", settings)
    )
    assert result.status == "ok" and result.config["compile"] is True
