"""Where extraction runs: inline (in the calling process) or on Ray actors that keep their models warm.

Both take a list of `ExtractJob`s and hand back one `JobResult` per job, either all in order (`extract`) or
in small groups as they finish (`as_completed`, so a run can index and report its first objects while the
rest are still being extracted); nothing here writes to the stores (the caller does, idempotently per
version). A worker reads the object itself, pinned to its ETag and hashed and sniffed as it streams, so
each object is read once, where it is extracted, and Ray workers on other machines need only the S3
settings, never the driver's disk.

On Ray, workers are actors with `max_restarts`/`max_task_retries`: a worker killed mid-batch is restarted
and its batch retried, so a result still arrives exactly once per job. Actors are named; against a
long-lived cluster (`RAY_ADDRESS`, or the one `mediasift up` starts) they are detached and reused by
every run, which is what keeps Whisper and CLIP loaded between runs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mediasift.config import Settings, secret
from mediasift.errors import VersionChanged
from mediasift.extract import Extraction, extract
from mediasift.identity import ObjectVersion
from mediasift.processes import alive
from mediasift.storage import Fetched, Storage

# Read by Ray when it is imported: loopback listeners only, and token auth (Ray's own default for new local
# clusters; RAY_AUTH_MODE=disabled joins a cluster that runs without it).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
log = logging.getLogger(__name__)
ACTOR_PREFIX = "mediasift-extractor"
QUEUE_DEPTH = 2
SPOOL_PREFIX = "mediasift-job-"
RAY_NAMESPACE = "mediasift"


@dataclass(frozen=True)
class ExtractJob:
    version: ObjectVersion


@dataclass
class JobResult:
    job: ExtractJob
    fetched: Fetched | None = None
    """What the worker read: size, sha256 and the content type sniffed from the bytes."""
    extraction: Extraction | None = None
    superseded: str | None = None
    """Set when the notified version could no longer be read (overwritten since): nothing to extract."""
    error: str | None = None


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs: model and S3 settings (secrets travel to workers, never into logs)."""

    settings: Settings

    def storage(self) -> Storage:
        s = self.settings
        return Storage(s.s3_endpoint_url, secret(s.s3_access_key), secret(s.s3_secret_key), s.s3_region)


class Worker:
    """Extraction in one process: its models load once, on first use, and serve every job after."""

    def __init__(self, config: WorkerConfig):
        from mediasift.models import Models

        self.config = config
        self.models = Models(config.settings)
        self.storage = config.storage()
        remove_orphan_spools()

    def run(self, jobs: Sequence[ExtractJob]) -> list[JobResult]:
        return [self._one(job) for job in jobs]

    def _one(self, job: ExtractJob) -> JobResult:
        """The object is spooled to a directory of its own that goes with the job, finished or not."""
        with tempfile.TemporaryDirectory(prefix=f"{SPOOL_PREFIX}{os.getpid()}-") as spool:
            path = Path(spool) / "object.bin"
            try:
                fetched = self.storage.read(job.version, path)
                return JobResult(job, fetched, extract(path, job.version, fetched.content_type, self.models))
            except VersionChanged as changed:
                return JobResult(job, superseded=str(changed))
            except Exception as error:  # returned, not raised: one bad object must not fail its batch
                log.warning("extract_failed uri=%s etag=%s error=%s", job.version.uri, job.version.etag, error)
                return JobResult(job, error=f"{type(error).__name__}: {error}")

    def load_counts(self) -> dict[str, int]:
        return dict(self.models.load_counts)

    def pid(self) -> int:
        return os.getpid()


def remove_orphan_spools() -> None:
    """Spools of workers killed mid-object (an OOM kill, a lost actor) would stay in the temp dir, a whole
    object each; a worker starting (a restarted actor, say) removes those whose process is gone."""
    for spool in Path(tempfile.gettempdir()).glob(f"{SPOOL_PREFIX}*-*"):
        pid = spool.name.removeprefix(SPOOL_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(spool, ignore_errors=True)


class Compute(ABC):
    name: str

    @abstractmethod
    def as_completed(self, jobs: Sequence[ExtractJob]) -> Iterator[list[JobResult]]: ...

    def extract(self, jobs: Sequence[ExtractJob]) -> list[JobResult]:
        """Every result, in the order of `jobs` (results from Ray are copies: matched by value)."""
        done: dict[ExtractJob, list[JobResult]] = defaultdict(list)
        for group in self.as_completed(jobs):
            for result in group:
                done[result.job].append(result)
        return [done[job].pop() for job in jobs]


class InlineCompute(Compute):
    name = "inline"

    def __init__(self, config: WorkerConfig):
        self.worker = Worker(config)

    def as_completed(self, jobs: Sequence[ExtractJob]) -> Iterator[list[JobResult]]:
        for job in jobs:
            yield self.worker.run([job])

    def load_counts(self) -> list[dict[str, int]]:
        return [self.worker.load_counts()]

    def close(self) -> None:
        pass


class RayCompute(Compute):
    """A pool of extraction actors. `address=None` starts a private local Ray (tests, one-off runs)."""

    name = "ray"

    def __init__(self, config: WorkerConfig, address: str | None, actors: int = 2, batch_size: int = 4):
        import ray

        self.batch_size = batch_size
        self.ray_dir: Path | None = None
        """Temp dir of the private Ray this started (None when joining a cluster or an initialized Ray)."""
        if not ray.is_initialized():
            self.ray_dir = start_ray(address)
        gpus = ray.cluster_resources().get("GPU", 0)
        settings = config.settings.model_copy(update={"device": "cuda" if gpus else config.settings.device})
        remote = ray.remote(Worker)
        self.actors = [
            remote.options(
                name=f"{ACTOR_PREFIX}-{i}", namespace=RAY_NAMESPACE, get_if_exists=True,
                lifetime=None if self.ray_dir else "detached", max_restarts=-1, max_task_retries=3,
                num_cpus=1, num_gpus=(gpus / actors) if gpus else 0,
            ).remote(WorkerConfig(settings))
            for i in range(actors)
        ]

    def as_completed(self, jobs: Sequence[ExtractJob]) -> Iterator[list[JobResult]]:
        """One group per actor batch, in the order the batches finish. Each actor gets up to `QUEUE_DEPTH`
        batches ahead, topped up before a finished group is handed back, so the actors keep working while
        the caller writes what came back. (Ray's ActorPool submits only when the caller asks for more.)"""
        import ray

        waiting = deque(list(jobs[i:i + self.batch_size]) for i in range(0, len(jobs), self.batch_size))
        load = [0] * len(self.actors)
        running: dict[ray.ObjectRef, int] = {}
        self._top_up(waiting, load, running)
        while running:
            (ready,), _ = ray.wait(list(running), num_returns=1)
            load[running.pop(ready)] -= 1
            self._top_up(waiting, load, running)
            yield ray.get(ready)

    def _top_up(self, waiting: deque, load: list[int], running: dict) -> None:
        while waiting and min(load) < QUEUE_DEPTH:
            actor = load.index(min(load))
            running[self.actors[actor].run.remote(waiting.popleft())] = actor
            load[actor] += 1

    def load_counts(self) -> list[dict[str, int]]:
        import ray

        return ray.get([actor.load_counts.remote() for actor in self.actors])

    def pids(self) -> list[int]:
        import ray

        return ray.get([actor.pid.remote() for actor in self.actors])

    def close(self) -> None:
        """Stop the private Ray this started, or just disconnect from a cluster (its actors stay warm)."""
        import ray

        ray.shutdown()
        if self.ray_dir:
            shutil.rmtree(self.ray_dir, ignore_errors=True)


def start_ray(address: str | None) -> Path | None:
    """Join `address`, or start a private Ray on this machine bound to 127.0.0.1 and return its temp dir.
    (That dir stays short: Ray's unix socket paths must fit in 107 bytes.)"""
    import ray

    if address:
        ray.init(address=address, namespace=RAY_NAMESPACE, log_to_driver=False, configure_logging=False)
        return None
    temp_dir = Path(tempfile.mkdtemp(prefix="msray-", dir="/tmp"))
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=str(temp_dir), namespace=RAY_NAMESPACE, log_to_driver=False, configure_logging=False)
    return temp_dir


def compute_for(settings: Settings) -> Compute:
    """`MEDIASIFT_RAY`: off (inline), local (a private local Ray), or a cluster address."""
    config = WorkerConfig(settings)
    if not settings.uses_ray:
        return InlineCompute(config)
    address = None if settings.ray == "local" else settings.ray
    return RayCompute(config, address, actors=settings.ray_actors, batch_size=settings.ray_batch_size)
