"""Run metrics across processes: each run process writes its samples to the shared directory, and the
summary `mediasift status` prints adds them up (prometheus-client's multiprocess mode, real processes)."""

import subprocess
import sys
import textwrap

from mediasift.metrics import failure_reason, summary

RUN = textwrap.dedent("""
    import sys
    from mediasift.identity import ObjectVersion
    from mediasift.inbox import State
    from mediasift.metrics import run_metrics
    from mediasift.run.versions import VersionResult

    good = VersionResult(ObjectVersion("media", "a.pdf", "e1", None), State.DONE, seconds={"pages": 0.5})
    bad = VersionResult(ObjectVersion("media", "b.pdf", "e2", None), State.FAILED,
                        reason="MediaError: s3://media/b.pdf: cannot open PDF", permanent=True)
    run_metrics().record([good, bad] if sys.argv[1] == "mixed" else [good])
""")


def run_process(kind: str, directory) -> None:
    subprocess.run([sys.executable, "-c", RUN, kind], check=True, env={"PROMETHEUS_MULTIPROC_DIR": str(directory),
                                                                        "PATH": "/usr/bin:/bin"})


def test_samples_of_separate_run_processes_add_up(tmp_path):
    run_process("mixed", tmp_path)
    run_process("good", tmp_path)
    found = summary(tmp_path)
    assert found["runs"] == {"failed": 1, "succeeded": 1}
    assert found["failures"] == {"MediaError": 1}
    assert found["extraction_seconds"] == {"pages": {"count": 2, "mean": 0.5}}
    assert found["versions_per_run"] == 1.5


def test_no_directory_means_no_runs_yet(tmp_path):
    assert summary(tmp_path / "absent") == {"runs": {}, "failures": {}, "extraction_seconds": {},
                                            "versions_per_run": None}


def test_failure_reasons_are_bounded_labels():
    assert failure_reason("LockHeld: s3://b/k (etag 1) is being processed by another run") == "LockHeld"
    assert failure_reason("index write failed: OSError: [Errno 30] Read-only file system") == "index write failed"
    assert failure_reason("s3://b/k with a colon: in its key") == "other"
    assert failure_reason(None) == "unknown"


def test_the_receiver_serves_the_runs_metrics_at_its_metrics_endpoint(tmp_path):
    import httpx

    from mediasift.config import Settings
    from mediasift.intake.receiver import ReceiverServer, create_app
    from mediasift.local.processes import LOOPBACK, free_port

    server = ReceiverServer(create_app(Settings(home=tmp_path, webhook_token="t")), LOOPBACK, free_port()).start()
    try:
        assert "mediasift_runs_total" not in httpx.get(f"{server.url}/metrics").text, "no run yet"
        (tmp_path / "metrics").mkdir()
        run_process("mixed", tmp_path / "metrics")
        scraped = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    assert 'mediasift_runs_total{outcome="failed"} 1.0' in scraped
    assert 'mediasift_version_failures_total{dead_lettered="true",reason="MediaError"} 1.0' in scraped
    assert 'mediasift_extraction_seconds_count{layer="pages"} 1.0' in scraped
