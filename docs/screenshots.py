"""Screenshots of the real Dagster UI for the README's "Working in the Dagster UI" section.

    .venv/bin/python docs/screenshots.py            # writes docs/img/*.png (a few minutes)
    .venv/bin/python docs/screenshots.py --hold     # and keeps the stack up afterwards, until Ctrl-C

Starts the embedded stack with the UI (`dagster dev`, 127.0.0.1, free ports) in a temporary home with the
example taxonomy, uploads the bundled sample media through the S3 client, waits until the inbox holds every
version done and no run is in flight, materialises the analysis assets once (the analysis job launched
through the UI's GraphQL API; the analysis sensor is stopped first so that this is the only analysis run),
then drives headless Chromium (Debian's `chromium`) over the DevTools protocol: one page per shot, waited
for until its text is there, captured at 1400×900. The near copy of the sunset photo is uploaded after the
rest, so its partition carries the `duplicate-upload` rule's WARN on `no_rule_flags`.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import io
import itertools
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from PIL import Image
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mediasift.config import Settings  # noqa: E402
from mediasift.inbox import Inbox  # noqa: E402
from mediasift.local.samples import write_samples  # noqa: E402
from mediasift.local.stack import DagsterMode, Stack  # noqa: E402
from mediasift.store.s3 import ObjectStore  # noqa: E402

WIDTH, HEIGHT = 1400, 900
MAX_BYTES = 400_000
PREFIX = "samples/"
LATE = "sunset_copy.jpg"
"""Uploaded once the rest is indexed: its arrival finds sunset.png and is judged its near duplicate."""
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 2.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class GraphQL:
    """What the UI itself calls: POST /graphql."""

    def __init__(self, url: str):
        self.url = f"{url}/graphql"

    def __call__(self, query: str, **variables: object) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL errors: {answer['errors']}")
        return answer["data"]

    def repository(self) -> dict:
        data = self("""{ repositoriesOrError { ... on RepositoryConnection {
                         nodes { name location { name } } } } }""")
        node = data["repositoriesOrError"]["nodes"][0]
        return {"repositoryLocationName": node["location"]["name"], "repositoryName": node["name"]}

    def stop_sensor(self, name: str) -> None:
        selector = {**self.repository(), "sensorName": name}
        data = self("""query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
                         __typename ... on Sensor { sensorState { id status } } } }""", s=selector)
        state = data["sensorOrError"]["sensorState"]
        if state["status"] == "RUNNING":
            result = self("""mutation($id: String!) { stopSensor(id: $id) { __typename
                               ... on StopSensorMutationResult { instigationState { status } }
                               ... on PythonError { message } } }""", id=state["id"])["stopSensor"]
            if result["__typename"] != "StopSensorMutationResult":
                raise RuntimeError(f"could not stop {name}: {result}")

    def launch(self, job: str) -> str:
        params = {"selector": {**self.repository(), "jobName": job}, "runConfigData": {}}
        result = self("""mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
                           ... on LaunchRunSuccess { run { runId } }
                           ... on PythonError { message }
                           ... on RunConfigValidationInvalid { errors { message } } } }""", p=params)["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"could not launch {job}: {result}")
        return result["run"]["runId"]

    def run_status(self, run_id: str) -> str:
        data = self("""query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }""", id=run_id)
        return data["runOrError"]["status"]

    def runs_in_flight(self) -> int:
        data = self("""query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs { count } } }""",
                    f={"statuses": IN_FLIGHT})
        return data["runsOrError"]["count"]

    def last_run_of(self, partition: str) -> str:
        data = self("""query($f: RunsFilter) { runsOrError(filter: $f, limit: 1) {
                         ... on Runs { results { runId } } } }""",
                    f={"tags": [{"key": "dagster/partition", "value": partition}], "statuses": ["SUCCESS"]})
        return data["runsOrError"]["results"][0]["runId"]


class Chromium:
    """Headless Chromium over the DevTools protocol: navigate, wait until the page says what it should, shoot."""

    def __init__(self, binary: str):
        self.profile = Path(tempfile.mkdtemp(prefix="mediasift-chromium-"))
        self.process = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self.profile}",
             f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        wait_for(port_file.exists, 60, "Chromium's DevTools port", interval=0.2)
        port = int(port_file.read_text().split()[0])
        targets = wait_for(lambda: [t for t in self._json(port) if t["type"] == "page"], 30, "a page target", 0.2)
        self.exits = contextlib.ExitStack()
        self.socket = self.exits.enter_context(
            connect(targets[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=30))
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                  mobile=False)

    @staticmethod
    def _json(port: int) -> list[dict]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as response:
            return json.load(response)

    def call(self, method: str, **params: object) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=120))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def open(self, url: str, texts: tuple[str, ...], timeout: float = 90) -> None:
        """Navigate and wait until every text is on the page and nothing is loading any more."""
        self.call("Page.navigate", url=url)
        check = f"""(() => {{
            const dialog = [...document.querySelectorAll('[role=dialog]')]
                .find(d => d.innerText.includes('Join the Dagster community'));
            const skip = dialog && [...dialog.querySelectorAll('button')].find(b => b.innerText.trim() === 'Skip');
            if (skip) {{ skip.click(); return false; }}
            const t = document.body ? document.body.innerText : '';
            return {json.dumps(list(texts))}.every(s => t.includes(s)); }})()"""
        try:
            wait_for(lambda: self.evaluate(check), timeout, f"{url} to show {texts}", interval=0.5)
        except TimeoutError as error:
            log(f"warning: {error}; shooting what is there")
        time.sleep(2.5)  # the graph's layout and the charts settle after their data arrives

    def press(self, text: str, within: str = "body") -> None:
        """A real mouse click on the last element under `within` whose text is `text` (popovers and
        React handlers see what a person's click gives them)."""
        centre = self.evaluate(f"""(() => {{ const found = [...document.querySelectorAll({json.dumps(within)} + ' *')]
            .filter(e => e.innerText && e.innerText.trim() === {json.dumps(text)});
          if (!found.length) return null; const e = found[found.length - 1]; e.scrollIntoView({{block: 'nearest'}});
          const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        if centre is None:
            raise RuntimeError(f"nothing saying {text!r} under {within}")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=centre[0], y=centre[1], button="left", clickCount=1)
        time.sleep(1.5)

    def escape(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key="Escape", code="Escape", windowsVirtualKeyCode=27)
        time.sleep(1.0)

    def shoot(self, path: Path) -> None:
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        image = Image.open(io.BytesIO(data)).convert("RGB")
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        if out.tell() > MAX_BYTES:  # a UI screenshot has few colours: a palette keeps it sharp and small
            out = io.BytesIO()
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        scale = 1.0
        while out.tell() > MAX_BYTES:
            scale *= 0.85
            out = io.BytesIO()
            image.resize((int(WIDTH * scale), int(HEIGHT * scale)), Image.Resampling.LANCZOS).quantize(
                colors=256).save(out, format="PNG", optimize=True)
        path.write_bytes(out.getvalue())
        log(f"wrote {path} ({out.tell() // 1024} KB, {image.width}×{image.height} × {scale:.2f})")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.exits.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclasses.dataclass
class Prepared:
    flagged: str
    """The version hash of the flagged near copy."""
    plain: str
    """The version hash of a video (every layer but pages has rows)."""
    analysis_run: str
    ingest_run: str


def upload(stack: Stack, files: list[Path]) -> None:
    storage = ObjectStore.from_settings(stack.settings)
    for path in files:
        storage.upload(path, stack.settings.bucket, PREFIX + path.name)


def wait_indexed(stack: Stack, ui: GraphQL, expected: int, timeout: float) -> dict[str, int]:
    inbox = Inbox(stack.settings.inbox_url)
    last: list[dict] = [{}]

    def settled() -> bool:
        counts = inbox.counts()
        if counts != last[0]:
            log(f"inbox: {', '.join(f'{k} {v}' for k, v in counts.items() if v)}")
            last[0] = counts
        finished = sum(counts[s] for s in ("done", "unsupported", "failed", "superseded", "deleted"))
        return finished >= expected and not counts["pending"] and not counts["running"] and not ui.runs_in_flight()

    wait_for(settled, timeout, f"{expected} versions indexed", interval=3)
    inbox.close()
    return last[0]


def prepare(stack: Stack, samples: Path, timeout: float) -> Prepared:
    ui = GraphQL(stack.dagster_url)
    ui.stop_sensor("analysis_sensor")
    files = sorted(p for p in samples.iterdir() if p.is_file())
    first = [p for p in files if p.name != LATE]
    log(f"uploading {len(first)} sample files, then {LATE}")
    upload(stack, first)
    wait_indexed(stack, ui, len(first), timeout)
    upload(stack, [samples / LATE])
    counts = wait_indexed(stack, ui, len(files), timeout)
    if counts["done"] != len(files):
        raise RuntimeError(f"not every sample was indexed: {counts}; see {stack.dagster_home / 'dagster.log'}")
    inbox = Inbox(stack.settings.inbox_url)
    hashes = {p.name: inbox.versions_of(stack.settings.bucket, PREFIX + p.name)[-1].version_hash for p in files}
    inbox.close()
    log("launching analysis_job through GraphQL")
    run_id = ui.launch("analysis_job")
    status = wait_for(lambda: (s := ui.run_status(run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and s,
                      timeout, "the analysis run", interval=3)
    if status != "SUCCESS":
        raise RuntimeError(f"analysis run {run_id} ended {status}")
    return Prepared(flagged=hashes[LATE], plain=hashes["harbour_report.mp4"], analysis_run=run_id,
                    ingest_run=ui.last_run_of(hashes[LATE]))


def asset_url(base: str, asset: str, **query: str) -> str:
    return f"{base}/assets/{asset}" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def shoot(base: str, prepared: Prepared, out: Path, binary: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    browser = Chromium(binary)
    try:
        browser.open(asset_url(base, "mediasift/source_object", view="lineage", lineageScope="downstream"),
                     ("source_object", "transcript", "duplicates", "clusters"))
        browser.shoot(out / "asset-graph.png")
        browser.open(asset_url(base, "mediasift/source_object", view="partitions", partition=prepared.flagged),
                     (prepared.flagged, "duplicate_of", "anomaly_flagged"))
        browser.shoot(out / "source-object-partition.png")
        browser.open(asset_url(base, "mediasift/source_object", view="checks"), ("no_rule_flags", prepared.flagged))
        browser.shoot(out / "source-object-flags-check.png")
        # A backfill as a person starts it: Materialize… on the partitions tab (the dialog first says the
        # layers come along: one multi-asset), two partitions chosen; not launched.
        browser.open(asset_url(base, "mediasift/source_object", view="partitions"), ("Materialize",))
        browser.press("Materialize…")
        browser.press("Confirm")
        browser.press("Select a partition or create one")
        for partition in (prepared.flagged, prepared.plain):
            browser.press(partition, ".dagster-popover")
        browser.escape()
        browser.shoot(out / "backfill-dialog.png")
        browser.open(asset_url(base, "mediasift/visual", view="checks"),
                     ("rows_have_lineage", "vector_dimensions", "no_rows_for_removed_versions"))
        browser.shoot(out / "layer-checks.png")
        browser.open(asset_url(base, "mediasift/duplicates", view="checks"), ("replay_matches_arrival",))
        browser.shoot(out / "duplicates-check.png")
        browser.open(f"{base}/runs/{prepared.analysis_run}", ("Success", "duplicates", "clusters"))
        browser.shoot(out / "analysis-run.png")
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for indexing, and again "
                        "for the analysis run")
    parser.add_argument("--hold", action="store_true", help="keep the stack up after the shots, until Ctrl-C")
    parser.add_argument("--shoot", nargs=2, metavar=("URL", "PREPARED_JSON"),
                        help="only take the shots, of a UI that --hold keeps up (it prints the JSON)")
    args = parser.parse_args()
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    if args.shoot:
        shoot(args.shoot[0], Prepared(**json.loads(args.shoot[1])), args.out, binary)
        return
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mediasift-screenshots-") as tmp:
        settings = Settings(home=Path(tmp) / "home", taxonomy=ROOT / "examples" / "taxonomy.yaml")
        samples = Path(tmp) / "samples"
        write_samples(samples)
        with Stack(settings, DagsterMode.DEV) as stack:
            log(f"stack up; Dagster UI at {stack.dagster_url}")
            prepared = prepare(stack, samples, args.timeout)
            log(f"prepared: {json.dumps(dataclasses.asdict(prepared))}")
            try:
                shoot(stack.dagster_url, prepared, args.out, binary)
            except Exception:
                if not args.hold:
                    raise
                traceback.print_exc()
            if args.hold:
                log(f"holding the stack at {stack.dagster_url}; Ctrl-C stops it")
                stop = threading.Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())
                with contextlib.suppress(KeyboardInterrupt):
                    stop.wait()
    log(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
