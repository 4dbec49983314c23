"""The device pool: detection, exclusive hand-out under threads, timeouts, first come first served."""

import threading
import time

import pytest

from discover.sandbox.pool import DevicePool, PoolError, visible_gpus


def wait_until(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0", ["cuda:0"]),
        ("2,3", ["cuda:2", "cuda:3"]),
        (" 1 , 0 ", ["cuda:1", "cuda:0"]),
        ("0,-1,1", ["cuda:0"]),  # CUDA hides everything from the first invalid entry on
        ("GPU-8e2f1c", ["cuda:GPU-8e2f1c"]),
    ],
)
def test_detect_reads_cuda_visible_devices(monkeypatch, value, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    pool = DevicePool.detect(cpu_slots=3)
    assert pool.slots == expected
    assert pool.kind == "cuda"


@pytest.mark.parametrize("value", ["", "-1", "none"])
def test_no_visible_gpu_means_cpu_slots(monkeypatch, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    pool = DevicePool.detect(cpu_slots=3)
    assert pool.slots == ["cpu:0", "cpu:1", "cpu:2"]
    assert pool.kind == "cpu"
    assert DevicePool.detect().slots == ["cpu:0"]


def test_max_gpus_caps_the_pool(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert DevicePool.detect(max_gpus=2).slots == ["cuda:4", "cuda:5"]
    assert DevicePool.detect(cpu_slots=2, max_gpus=0).slots == ["cpu:0", "cpu:1"]


def test_detect_asks_torch_when_the_variable_is_unset(monkeypatch):
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = torch.cuda.device_count()
    expected = [f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu:0", "cpu:1"]
    assert DevicePool.detect(cpu_slots=2).slots == expected


def test_visible_gpus_parsing():
    assert visible_gpus("") == []
    assert visible_gpus("0,1,,2") == ["0", "1"]
    assert visible_gpus("MIG-abc,3") == ["MIG-abc", "3"]


@pytest.mark.parametrize(
    "slots", [[], ["cuda:0", "cuda:0"], ["gpu0"], ["cuda:"], ["tpu:0"], ["cuda:0", "cpu:0"]]
)
def test_bad_slot_lists_are_refused(slots):
    with pytest.raises(PoolError):
        DevicePool(slots)


def test_bad_detect_arguments_are_refused():
    with pytest.raises(PoolError):
        DevicePool.detect(cpu_slots=0)
    with pytest.raises(PoolError):
        DevicePool.detect(max_gpus=-1)


# ----------------------------------------------------------------------------- hand-out


def test_acquire_and_release():
    pool = DevicePool(["cuda:0", "cuda:1", "cuda:2"])
    assert (pool.total, pool.free) == (3, 3)
    pair = pool.acquire(2)
    assert pair is not None
    assert pair.devices == ["cuda:0", "cuda:1"]
    assert pair.kind == "cuda"
    assert pool.free == 1
    single = pool.acquire()
    assert single is not None and single.devices == ["cuda:2"]
    assert pool.free == 0
    pair.release()
    assert pool.free == 2
    single.devices.clear()  # the caller's list is theirs; the pool remembers what it lent
    single.release()
    assert pool.free == 3


def test_release_is_idempotent_and_never_frees_someone_elses_device():
    pool = DevicePool(["cpu:0"])
    first = pool.acquire()
    assert first is not None and first.kind == "cpu"
    first.release()
    first.release()
    assert pool.free == 1
    second = pool.acquire()
    assert second is not None and second.devices == ["cpu:0"]
    first.release()  # a stale lease: the slot now belongs to `second`
    assert pool.free == 0
    assert pool.acquire(timeout=0) is None
    second.release()
    assert pool.free == 1


def test_timeout_returns_none():
    pool = DevicePool(["cpu:0", "cpu:1"])
    held = pool.acquire(2)
    started = time.monotonic()
    assert pool.acquire(timeout=0.1) is None
    assert time.monotonic() - started >= 0.09
    assert pool.acquire(timeout=0) is None
    assert pool.waiting == 0  # a caller that gave up leaves the queue
    held.release()
    assert pool.acquire(2, timeout=0) is not None


def test_asking_for_more_than_the_pool_has_fails_at_once():
    pool = DevicePool(["cuda:0", "cuda:1"])
    started = time.monotonic()
    with pytest.raises(PoolError, match="asked for 3 devices but the pool has 2"):
        pool.acquire(3)
    with pytest.raises(PoolError):
        pool.acquire(0)
    assert time.monotonic() - started < 0.5


def test_context_managers_release():
    pool = DevicePool(["cpu:0", "cpu:1"])
    with pool.lease(2) as lease:
        assert lease.devices == ["cpu:0", "cpu:1"]
        assert pool.free == 0
        with pytest.raises(TimeoutError), pool.lease(timeout=0.01):
            pass
    assert pool.free == 2

    lease = pool.acquire()
    with lease:
        assert pool.free == 1
    assert pool.free == 2

    with pytest.raises(RuntimeError), pool.lease():
        raise RuntimeError("the job failed")
    assert pool.free == 2  # released on the way out of a failure too


def test_one_job_per_device_under_threads():
    pool = DevicePool(["cuda:0", "cuda:1", "cuda:2"])
    in_use: set[str] = set()
    guard = threading.Lock()
    peak = [0]
    errors: list[str] = []

    def job(count: int) -> None:
        for _ in range(15):
            with pool.lease(count, timeout=10) as lease:
                with guard:
                    clash = in_use.intersection(lease.devices)
                    if clash or len(set(lease.devices)) != count:
                        errors.append(f"{lease.devices} while {sorted(in_use)} were busy")
                    in_use.update(lease.devices)
                    peak[0] = max(peak[0], len(in_use))
                time.sleep(0.001)
                with guard:
                    in_use.difference_update(lease.devices)

    threads = [threading.Thread(target=job, args=(1 + i % 2,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert peak[0] <= pool.total
    assert pool.free == pool.total


def test_first_come_first_served():
    pool = DevicePool(["cuda:0", "cuda:1"])
    blocker = pool.acquire()
    order: list[str] = []
    leases: dict[str, object] = {}

    def wait_for(name: str, count: int) -> None:
        leases[name] = pool.acquire(count, timeout=10)
        order.append(name)

    wide = threading.Thread(target=wait_for, args=("wide", 2))
    wide.start()
    wait_until(lambda: pool.waiting == 1)
    narrow = threading.Thread(target=wait_for, args=("narrow", 1))
    narrow.start()
    wait_until(lambda: pool.waiting == 2)
    time.sleep(0.05)
    assert order == []  # one device is free, but the two-device job came first

    blocker.release()
    wait_until(lambda: order == ["wide"])
    assert pool.free == 0
    leases["wide"].release()
    wide.join()
    narrow.join()
    assert order == ["wide", "narrow"]
    leases["narrow"].release()
    assert pool.free == 2
