"""``ketacds serve`` (the CDS Hooks service) and ``ketacds feedback`` (what clinicians did with cards).

Kept apart from :mod:`ketacds.cli` so that the web stack (the ``server`` extra) is
imported only when the service starts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ketacds.cli.options import BACKEND, RULES_DIR
from ketacds.errors import InputError, RulesetError
from ketacds.vocabulary import ESKETAMINE_NASAL, ROUTES

__all__ = ["feedback", "serve"]

EXIT_BAD_INPUT = 2


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--public-url",
    help="The URL CDS clients call (default http://HOST:PORT); token aud must be {URL}/cds-services/{id}.",
)
@click.option(
    "--issuers",
    "issuers_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML or JSON listing the trusted issuers: [{iss, jwks_url | jwks_file}].",
)
@click.option("--insecure-no-auth", is_flag=True, help="Accept calls without a token (local use only).")
@click.option("--jurisdiction", default="US", show_default=True, help="Where the service advises.")
@click.option(
    "--patient-view-route",
    "routes",
    multiple=True,
    type=click.Choice(ROUTES),
    help=f"Treatment(s) a patient-view assesses (repeatable; default {ESKETAMINE_NASAL}).",
)
@click.option(
    "--database", default="ketacds-cds.sqlite3", show_default=True, help="SQLite file for feedback and cards."
)
@click.option(
    "--max-body-mb", default=5.0, show_default=True, type=click.FloatRange(0.01, 500), help="Body limit."
)
@click.option("--fhir-server", "fhir_servers", multiple=True, help="URL prefix the service may fetch from.")
@RULES_DIR
@click.option(
    "--rules-docs-url", help="Base URL of the rendered rule docs (default {public-url}/docs/rules)."
)
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning"])
)
@BACKEND
def serve(
    host: str,
    port: int,
    workers: int,
    public_url: str | None,
    issuers_file: Path | None,
    insecure_no_auth: bool,
    jurisdiction: str,
    routes: tuple[str, ...],
    database: str,
    max_body_mb: float,
    fhir_servers: tuple[str, ...],
    rules_dir: Path | None,
    rules_docs_url: str | None,
    log_level: str,
    backend: str,
) -> None:
    """Serve the CDS Hooks 2.0 service (patient-view, order-select, order-sign)."""
    try:
        import uvicorn

        from ketacds.server.settings import ENVIRONMENT_VARIABLE, ServiceSettings, load_issuers
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        _fail(f"the service needs the server extra (pip install 'ketacds[server]'): {error}")
    from ketacds.ruleset.load import load_ruleset
    from ketacds.ruleset.scope import coverage

    try:
        ruleset = load_ruleset(rules_dir)
        issuers = load_issuers(issuers_file) if issuers_file is not None else ()
        if jurisdiction.upper() not in {j.id for j in ruleset.jurisdictions}:
            raise InputError("--jurisdiction", f"unknown jurisdiction {jurisdiction!r}")
        for route in routes or (ESKETAMINE_NASAL,):
            # A patient-view route the rules refuse here would fail every call: say so now.
            found = coverage(ruleset, route, jurisdiction.upper())
            if found.state != "covered":
                raise InputError("--patient-view-route", found.describe())
        settings = ServiceSettings(
            public_url=public_url or f"http://{host}:{port}",
            issuers=issuers,
            auth=not insecure_no_auth,
            jurisdiction=jurisdiction.upper(),
            patient_view_routes=routes or (ESKETAMINE_NASAL,),
            database=str(Path(database).resolve()),
            max_body_bytes=int(max_body_mb * 1_000_000),
            fhir_servers=fhir_servers,
            rules_dir=str(rules_dir) if rules_dir else None,
            rules_docs_url=rules_docs_url,
            log_level=log_level,
            backend=backend,
        )
    except (InputError, RulesetError, ValueError) as error:
        _fail(str(error))
    os.environ[ENVIRONMENT_VARIABLE] = settings.to_json()
    uvicorn.run(
        "ketacds.server.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        # An access line is logged at info: at warning uvicorn would still gather each
        # request's (client, method, path) for a line its logger then drops.
        access_log=log_level != "warning",
        server_header=False,
        timeout_keep_alive=5,
    )


@click.command()
@click.option(
    "--database",
    default="ketacds-cds.sqlite3",
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False),
)
@click.option("--service", help="Only this service id.")
@click.option("--card", help="Only feedback on this card uuid.")
@click.option("--outcome", type=click.Choice(["accepted", "overridden"]), help="Only this outcome.")
@click.option("--rule", "rule_id", help="Only cards of this rule id.")
@click.option("--since", help="Only feedback received at or after this ISO 8601 time.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
def feedback(
    database: Path,
    service: str | None,
    card: str | None,
    outcome: str | None,
    rule_id: str | None,
    since: str | None,
    limit: int,
) -> None:
    """Print the recorded CDS Hooks feedback as JSON lines, newest first, with each card's rules."""
    from ketacds.server.store import Store, database_problem

    if not database.is_file():
        _fail(f"{database}: no such database")
    problem = database_problem(database)
    if problem is not None:
        _fail(f"{database}: {problem}")
    store = Store(database)
    try:
        rows = store.query_feedback(
            service=service, card=card, outcome=outcome, rule_id=rule_id, since=since, limit=limit
        )
    finally:
        store.close()
    for row in rows:
        click.echo(json.dumps(row, sort_keys=True, ensure_ascii=False))
