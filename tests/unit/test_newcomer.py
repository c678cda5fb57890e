"""What a newcomer meets first: the shipped examples work, objects say what they are."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketacds import Engine
from ketacds.adapters.fhir import read_bundle
from ketacds.cli import main
from ketacds.errors import InputError
from support import EXAMPLES, ROOT

BUNDLE = EXAMPLES / "fhir" / "synthea-milan-beatty.json"
CONTEXT = ("--route", "esketamine-nasal", "--jurisdiction", "US", "--now", "2026-11-21T09:00:00Z")


def test_an_engine_prints_its_rules(engine: Engine):
    text = repr(engine)

    assert text.startswith(f"<Engine {engine.ruleset.name} {engine.ruleset.version}: ")
    assert f"{len(engine.ruleset.rules)} rules" in text
    assert engine.digest[:16] in text


def test_the_package_is_marked_typed():
    assert resources.files("ketacds").joinpath("py.typed").is_file()


def _ids() -> list[str]:
    from ketacds.models.load import read_document

    return [read_document(path)["patient"]["id"] for path in sorted(EXAMPLES.glob("*.yaml"))]


def test_no_two_examples_share_a_patient_id():
    ids = _ids()

    assert len(ids) == len(set(ids)), ids


def test_the_example_bundle_is_assessed_and_explained():
    assessed = CliRunner().invoke(main, ["assess", str(BUNDLE), *CONTEXT, "--format", "json"])
    explained = CliRunner().invoke(main, ["explain", str(BUNDLE), "--rule", "KCDS-CI-004", *CONTEXT])

    assert 0 == assessed.exit_code, assessed.output
    assert "incomplete" == json.loads(assessed.stdout)["status"]
    assert 0 == explained.exit_code, explained.output
    assert "KCDS-CI-004" in explained.stdout
    assert "DID NOT FIRE" in explained.stdout


def test_explain_asks_for_the_context_a_bundle_lacks():
    result = CliRunner().invoke(main, ["explain", str(BUNDLE), "--rule", "KCDS-CI-004"])

    assert 2 == result.exit_code
    assert "--route" in result.stderr


@pytest.mark.parametrize("kind", [str, bytes])
def test_read_bundle_takes_json_text_too(kind):
    text = BUNDLE.read_text(encoding="utf-8")
    given = text if kind is str else text.encode()

    assert read_bundle(given) == read_bundle(json.loads(text))


def test_read_bundle_given_text_that_is_not_json_says_so():
    with pytest.raises(InputError, match="invalid JSON"):
        read_bundle("{not json")


def test_the_dev_issuer_makes_keys_and_tokens(tmp_path: Path):
    """The local issuer the README uses for `serve`: keys made here, a token that verifies against them."""
    import jwt

    script = [sys.executable, str(EXAMPLES / "serve" / "dev_issuer.py")]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*script, *args, "--dir", str(tmp_path)], capture_output=True, text=True, check=True
    )
    run("init")
    aud = "http://127.0.0.1:8080/cds-services/ketacds-patient-view"
    token = run("token", aud).stdout.strip()
    (key,) = json.loads((tmp_path / "jwks.json").read_text())["keys"]

    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES384"], audience=aud)
    assert "https://ehr.local.example/" == claims["iss"]
    assert "jwks_file: jwks.json" in (tmp_path / "issuers.yaml").read_text()
    assert (ROOT / ".gitignore").read_text().count("out/") >= 1
