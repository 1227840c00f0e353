"""Where extraction runs: inline (in the calling process) or on Ray actors that keep their models warm.

Both take a list of object versions and hand back one `Extraction` per version, either all in order (`extract`) or
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
from pathlib import Path
from typing import TYPE_CHECKING

from mediasift.config import Settings
from mediasift.errors import MediaError, VersionChanged
from mediasift.identity import ObjectVersion
from mediasift.local.processes import alive
from mediasift.store.s3 import ObjectStore

if TYPE_CHECKING:
    from mediasift.extraction.extract import Extraction

# Read by Ray when it is imported: loopback listeners only, and token auth (Ray's own default for new local
# clusters; RAY_AUTH_MODE=disabled joins a cluster that runs without it).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
log = logging.getLogger(__name__)
ACTOR_PREFIX = "mediasift-extractor"
QUEUE_DEPTH = 2
SPOOL_PREFIX = "mediasift-job-"
RAY_NAMESPACE = "mediasift"


class Worker:
    """Extraction in one process: its models load once, on first use, and serve every job after. The
    decoding and model libraries are imported on the first job too, so a process that only hands work to
    Ray actors never imports them."""

    def __init__(self, settings: Settings):
        """`settings` carry the model and S3 settings (secrets travel to workers, never into logs)."""
        from mediasift.extraction.models import Models

        self.models = Models(settings)
        self.storage = ObjectStore.from_settings(settings)
        remove_orphan_spools()

    def run(self, versions: Sequence[ObjectVersion]) -> list[Extraction]:
        return [self._one(version) for version in versions]

    def _one(self, version: ObjectVersion) -> Extraction:
        """The object is spooled to a directory of its own that goes with the job, finished or not."""
        from mediasift.extraction.extract import Extraction, extract

        with tempfile.TemporaryDirectory(prefix=f"{SPOOL_PREFIX}{os.getpid()}-") as spool:
            path = Path(spool) / "object.bin"
            try:
                return extract(path, version, self.storage.read(version, path), self.models)
            except VersionChanged as changed:
                return Extraction(version, superseded=str(changed))
            except Exception as error:  # returned, not raised: one bad object must not fail its batch
                log.warning("extract_failed uri=%s etag=%s error=%s", version.uri, version.etag, error)
                return Extraction(version, error=f"{type(error).__name__}: {error}",
                                  permanent=isinstance(error, MediaError))

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
    @abstractmethod
    def as_completed(self, versions: Sequence[ObjectVersion]) -> Iterator[list[Extraction]]: ...

    def extract(self, versions: Sequence[ObjectVersion]) -> list[Extraction]:
        """Every result, in the order of `versions` (results from Ray are copies: matched by value)."""
        done: dict[ObjectVersion, list[Extraction]] = defaultdict(list)
        for group in self.as_completed(versions):
            for result in group:
                done[result.version].append(result)
        return [done[version].pop() for version in versions]


class InlineCompute(Compute):
    def __init__(self, settings: Settings):
        self.worker = Worker(settings)

    def as_completed(self, versions: Sequence[ObjectVersion]) -> Iterator[list[Extraction]]:
        for version in versions:
            yield self.worker.run([version])

    def load_counts(self) -> list[dict[str, int]]:
        return [self.worker.load_counts()]

    def close(self) -> None:
        pass


class RayCompute(Compute):
    """A pool of extraction actors. `address=None` starts a private local Ray (tests, one-off runs)."""

    def __init__(self, settings: Settings, address: str | None, actors: int = 2, batch_size: int = 4):
        import ray

        self.batch_size = batch_size
        self.ray_dir: Path | None = None
        """Temp dir of the private Ray this started (None when joining a cluster or an initialized Ray)."""
        if not ray.is_initialized():
            self.ray_dir = start_ray(address)
        gpus = ray.cluster_resources().get("GPU", 0)
        settings = settings.model_copy(update={"device": "cuda" if gpus else settings.device})
        remote = ray.remote(Worker)
        self.actors = [
            remote.options(
                name=f"{ACTOR_PREFIX}-{i}", namespace=RAY_NAMESPACE, get_if_exists=True,
                lifetime=None if self.ray_dir else "detached", max_restarts=-1, max_task_retries=3,
                num_cpus=1, num_gpus=(gpus / actors) if gpus else 0,
            ).remote(settings)
            for i in range(actors)
        ]

    def as_completed(self, versions: Sequence[ObjectVersion]) -> Iterator[list[Extraction]]:
        """One group per actor batch, in the order the batches finish. Each actor gets up to `QUEUE_DEPTH`
        batches ahead, topped up before a finished group is handed back, so the actors keep working while
        the caller writes what came back. (Ray's ActorPool submits only when the caller asks for more.)"""
        import ray

        waiting = deque(list(versions[i:i + self.batch_size]) for i in range(0, len(versions), self.batch_size))
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
    if not settings.uses_ray:
        return InlineCompute(settings)
    address = None if settings.ray == "local" else settings.ray
    return RayCompute(settings, address, actors=settings.ray_actors, batch_size=settings.ray_batch_size)
