"""`ketacds serve` as a real process with two workers: assessment, and one replay store for both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx

from servers import free_port, token, write_issuers


def test_two_worker_processes_share_the_replay_store(tmp_path):
    """With --workers 2 every call is answered, and a token replayed to either worker is refused."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ketacds.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--issuers",
            str(write_issuers(tmp_path)),
            "--database",
            str(tmp_path / "cds.sqlite3"),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the service did not start in time"
            time.sleep(0.2)
        aud = f"{base}/cds-services/ketacds-patient-view"
        nothing = dict.fromkeys(
            ("patient", "conditions", "medications", "medicationStatements", "observations", "allergies")
        )

        def call(bearer: str) -> int:
            body = {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"patientId": "p"},
                "prefetch": nothing,
            }
            headers = {"Authorization": f"Bearer {bearer}", "Connection": "close"}
            return httpx.post(
                f"{base}/cds-services/ketacds-patient-view", json=body, headers=headers, timeout=30
            ).status_code

        fresh = [call(token(aud)) for _ in range(8)]
        once = token(aud)
        replays = [call(once) for _ in range(6)]
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the group this test started, by its id
        process.wait(timeout=30)
        log.close()

    assert [200] * 8 == fresh
    assert [200] + [401] * 5 == replays
