"""The command line's FHIR bundle input, `ketacds serve` argument checks, and `ketacds feedback`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from ketacds.cli import main
from ketacds.server.store import Store
from support import synthea


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_assess_reads_a_fhir_bundle_with_the_context_from_options():
    """A Synthea bundle is assessed directly; route, jurisdiction and now come from the options."""
    result = run(
        "assess",
        "--format",
        "json",
        "--route",
        "esketamine-nasal",
        "--jurisdiction",
        "US",
        "--now",
        "2026-11-21T09:00:00Z",
        str(synthea("03")),
    )

    assessment = json.loads(result.stdout)
    assert 0 == result.exit_code
    assert ("incomplete", "esketamine-nasal") == (assessment["status"], assessment["provenance"]["route"])
    # Besides what the reader left out, fact building lists each item no rule reads (none an
    # error here); its readings are years old: history (info `stale-reading`), never today's values.
    codes = {i["code"] for i in assessment["data_quality"]}
    assert {"not-read", "older-readings", "stale-reading"} == {
        c for c in codes if not c.startswith("unrecognised-")
    }
    assert not [i for i in assessment["data_quality"] if i["severity"] == "error"]


def test_a_bundle_without_context_options_exits_2():
    """Without --route, --jurisdiction and --now a bundle cannot be assessed: exit 2, naming them."""
    result = run("assess", str(synthea("03")))

    assert 2 == result.exit_code
    assert "give route, jurisdiction, now" in result.stderr


def test_serve_refuses_to_start_without_issuers():
    """Authentication is on unless switched off explicitly: no issuers, no service."""
    result = run("serve", "--port", "1")

    assert 2 == result.exit_code
    assert "no trusted issuers" in result.stderr


def test_serve_refuses_an_unknown_jurisdiction():
    """The jurisdiction must be one of the ruleset's."""
    result = run("serve", "--insecure-no-auth", "--jurisdiction", "XX")

    assert 2 == result.exit_code
    assert "unknown jurisdiction 'XX'" in result.stderr


def test_feedback_prints_json_lines(tmp_path: Path):
    """`ketacds feedback` prints what the service recorded, one JSON object per line."""
    database = tmp_path / "cds.sqlite3"
    store = Store(database)
    now = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
    store.record_cards([("c1", "svc", "order-sign", "h", ["KCDS-ORD-001"], "warning", "r", "d")], now)
    store.record_feedback(
        "svc", [{"card": "c1", "outcome": "overridden", "outcomeTimestamp": "t"}], None, now
    )
    store.close()

    result = run("feedback", "--database", str(database), "--rule", "KCDS-ORD-001")

    (line,) = result.stdout.splitlines()
    assert ["KCDS-ORD-001"] == json.loads(line)["rule_ids"]
    assert 2 == run("feedback", "--database", str(tmp_path / "none.sqlite3")).exit_code


def test_serve_refuses_a_patient_view_route_the_rules_refuse_there():
    """A patient-view route refused in the service's jurisdiction would fail every call: refuse to start."""
    result = run(
        "serve", "--insecure-no-auth", "--jurisdiction", "CA", "--patient-view-route", "esketamine-nasal"
    )

    assert 2 == result.exit_code
    assert "refuses esketamine-nasal in CA" in result.stderr
    assert "CI_ANEURYSM" in result.stderr
