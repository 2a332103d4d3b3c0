"""Where submit-many's tasks run: in this process, in a local process pool, or on Ray.

Each executor takes (key, argument) jobs lazily and yields (key, result, error) as tasks end,
with a bounded number in flight, so a manifest of a million models never sits in memory as
futures and the driver writes each result as soon as it is back. A task's failure (an
exception, a worker process that died) is that key's error; the others go on.

Ray is gmi's distributed engine (no home-made scheduler): tasks ask for one CPU, and one GPU
when the cluster has GPUs and the task generates images; a task whose worker dies is retried
`retries` times by Ray itself before it is reported failed.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from gmi.errors import ClusterUnavailableError, InvalidInputError, TaskLostError

Outcome = tuple[Any, Any, BaseException | None]  # key, result (None on error), error
DEFAULT_RETRIES = 2


class Executor(ABC):
    """Runs `fn(argument)` for each job; `gpu(argument)` says whether a task wants a GPU."""

    name: str = "executor"
    workers: int = 1

    @abstractmethod
    def run(
        self,
        fn: Callable[[Any], Any],
        jobs: Iterable[tuple[Any, Any]],
        gpu: Callable[[Any], bool] = lambda _: False,
    ) -> Iterator[Outcome]: ...

    def close(self) -> None:
        """Release processes or the cluster connection this executor opened."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.workers}


class InProcess(Executor):
    """One task at a time in this process (the default: no start-up cost, warm models)."""

    name = "in-process"

    def run(self, fn, jobs, gpu=lambda _: False):  # type: ignore[no-untyped-def]
        for key, argument in jobs:
            try:
                result = fn(argument)
            except Exception as exc:  # the task's failure, reported for its key
                yield key, None, exc
            else:
                yield key, result, None


def _limit_threads(threads: int, driver: int) -> None:
    """Pool-process initialiser: die with the driver, and share the cores instead of each
    process taking them all."""
    die_with_parent(driver)
    import torch

    torch.set_num_threads(threads)


def die_with_parent(parent: int, interval_s: float = 0.5) -> None:
    """End this worker process when its driver (pid `parent`, passed by the driver: a
    worker still starting up may already be an orphan) is gone. A SIGKILLed driver left two
    ~700 MB pool workers blocked for ever; an orphan is re-parented, so a daemon thread that
    compares its parent's pid with the driver's sees it."""
    import threading
    import time

    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="gmi-die-with-parent", daemon=True).start()


class LocalPool(Executor):
    """`workers` spawned processes on this machine. A process that dies breaks Python's pool:
    the pool is rebuilt and the tasks that were in flight are run again (each at most
    `retries` more times, as the culprit cannot be told apart from its neighbours)."""

    name = "local-pool"

    def __init__(self, workers: int, retries: int = DEFAULT_RETRIES) -> None:
        self.workers = workers
        self.retries = retries
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        return ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(threads, os.getpid()),
        )

    def run(self, fn, jobs, gpu=lambda _: False):  # type: ignore[no-untyped-def]
        queue = iter(jobs)
        again: list[tuple[Any, Any, int]] = []  # (key, argument, attempts so far)
        running: dict[Future, tuple[Any, Any, int]] = {}
        self._pool = self._pool or self._new_pool()
        while True:
            while len(running) < 2 * self.workers:
                if again:
                    job = again.pop(0)
                else:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    job = (nxt[0], nxt[1], 0)
                running[self._pool.submit(fn, job[1])] = job
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                key, argument, attempts = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    if attempts < self.retries:
                        again.append((key, argument, attempts + 1))
                    else:
                        yield key, None, TaskLostError("the pool process running it died")
                except Exception as exc:
                    yield key, None, exc
                else:
                    yield key, result, None
            if broken:  # every other task in flight died with the pool: run them again
                for future, (key, argument, attempts) in running.items():
                    future.cancel()
                    again.append((key, argument, attempts))
                running.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor(Executor):
    """Ray tasks. address: "local" starts a private local instance with `workers` CPUs;
    "auto" joins the cluster this machine belongs to (`ray start`); anything else is a
    cluster address (HOST:PORT or ray://HOST:10001). A Ray already initialised in this process
    (the Python API, tests) is used as it is."""

    name = "ray"

    def __init__(
        self,
        address: str = "local",
        workers: int | None = None,
        retries: int = DEFAULT_RETRIES,
        gpus_per_task: float | None = None,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise InvalidInputError("--ray needs the ray package: pip install 'gmi[ray]'") from exc
        self.ray = ray
        self.address = address
        self.retries = retries
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": "WARNING",
                "configure_logging": True,
            }
            problem = None if address in ("local", "auto") else _unreachable(address)
            if problem:  # Ray itself would retry for minutes, printing a line every 5 s
                raise ClusterUnavailableError(
                    f"no Ray cluster at {address!r} ({problem}); start one with "
                    "`ray start --head`, or use --ray local"
                )
            try:
                if address == "local":
                    ray.init(num_cpus=workers or os.cpu_count() or 1, **options)
                else:
                    ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterUnavailableError(
                    f"no Ray cluster at {address!r} ({str(exc).splitlines()[0]}); start one "
                    "with `ray start --head`, or use --ray local"
                ) from exc
            self._started = True
        resources = ray.cluster_resources()
        self.cpus = int(resources.get("CPU", 1))
        self.gpus = float(resources.get("GPU", 0))
        self.workers = workers or max(1, self.cpus)
        # one GPU per generating task when the cluster has GPUs (Ray then sets
        # CUDA_VISIBLE_DEVICES for it; tasks without one see no GPU and run on the CPU)
        self.gpus_per_task = (
            gpus_per_task if gpus_per_task is not None else (1.0 if self.gpus else 0.0)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "executor": self.name,
            "workers": self.workers,
            "cluster_cpus": self.cpus,
            "cluster_gpus": self.gpus,
        }

    def run(self, fn, jobs, gpu=lambda _: False):  # type: ignore[no-untyped-def]
        ray = self.ray
        remote = ray.remote(fn)
        queue = iter(jobs)
        running: dict[Any, Any] = {}  # ObjectRef -> key
        while True:
            while len(running) < self.workers:
                nxt = next(queue, None)
                if nxt is None:
                    break
                key, argument = nxt
                gpus = self.gpus_per_task if gpu(argument) else 0
                task = remote.options(num_cpus=1, num_gpus=gpus, max_retries=self.retries)
                running[task.remote(argument)] = key
            if not running:
                return
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                key = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the task raised
                    cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                    yield key, None, cause
                except ray.exceptions.RayError as exc:  # its worker died, retries spent
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    yield (
                        key,
                        None,
                        TaskLostError(
                            f"the Ray worker running it died ({type(exc).__name__}: {first})"
                        ),
                    )
                else:
                    yield key, result, None

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why HOST:PORT (or ray://HOST:PORT) takes no TCP connection, or None."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return None  # not HOST:PORT: Ray reports what it makes of it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as sock:
            return None if _speaks_http2(sock, timeout_s) else NOT_GRPC
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


NOT_GRPC = "something listens there, but not Ray (no gRPC answer)"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_http2(sock: socket.socket, timeout_s: float) -> bool:
    """Whether the listener answers as a gRPC server: Ray's GCS and its client server speak
    gRPC, i.e. HTTP/2, whose server's first frame is SETTINGS (type 4). Anything else there
    (a web server: Ray would retry it for ever) is told apart in one round trip."""
    sock.settimeout(timeout_s)
    sock.sendall(HTTP2_PREFACE)
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            return False
        head += chunk
    return head[3] == 0x04


def make_executor(ray: str | None, workers: int | None, retries: int = DEFAULT_RETRIES) -> Executor:
    """--ray ADDRESS (or "auto"/"local") -> Ray; else --workers N > 1 -> a local pool; else
    in this process."""
    if workers is not None and workers < 1:
        raise InvalidInputError("--workers must be at least 1")
    if retries < 0:
        raise InvalidInputError("--retries must be 0 or more")
    if ray:
        return RayExecutor(ray, workers, retries)
    if workers and workers > 1:
        return LocalPool(workers, retries)
    return InProcess()
