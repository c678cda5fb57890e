"""The pages of the rendered rule docs that the cards link to (``GET /docs/rules/{page}``)."""

from __future__ import annotations

import re
from pathlib import Path

from ketacds.engine.api import Engine
from ketacds.ruleset.load import bundled_rules_dir
from ketacds.server.settings import ServiceSettings

__all__ = ["PAGE", "rule_page"]

#: The page names served: lower-case Markdown file names, nothing with a path in it.
PAGE = re.compile(r"^[a-z0-9][a-z0-9-]*\.md$")


def rule_page(settings: ServiceSettings, engine: Engine, page: str) -> str | None:
    """A page of the rendered rule docs: the generated file when there is one, else a plain rendering."""
    directory = (
        Path(settings.rules_docs_dir)
        if settings.rules_docs_dir
        else bundled_rules_dir().parent / "docs" / "rules"
    )
    path = directory / page
    if path.is_file():
        return path.read_text(encoding="utf-8")
    ruleset = engine.ruleset
    if page == "index.md":
        files = sorted({(rule.file or "rules.yaml").rsplit("/", 1)[-1] for rule in ruleset.rules})
        lines = [f"# {ruleset.name} {ruleset.version}", "", f"sha256 `{engine.digest}`", ""]
        lines += [f"- [{name}]({name.removesuffix('.yaml')}.md)" for name in files]
        return "\n".join(lines) + "\n"
    rules = [
        r for r in ruleset.rules if (r.file or "").rsplit("/", 1)[-1] == page.removesuffix(".md") + ".yaml"
    ]
    if not rules:
        return None
    sources = {source.id: source.title for source in ruleset.sources}
    lines = [f"# {page.removesuffix('.md')} ({ruleset.name} {ruleset.version})", ""]
    for rule in rules:
        lines += [
            f'<a id="{rule.id.lower()}"></a>',
            f"## {rule.id}: {rule.title}",
            "",
            f"{rule.category}, severity {rule.severity}, confidence {rule.confidence}; "
            f"routes {', '.join(rule.routes)}; jurisdictions {', '.join(rule.jurisdictions)}",
            "",
            rule.finding.message if rule.finding else "(derives flags only)",
            "",
            f"Rationale: {rule.rationale}",
            "",
        ]
        lines += [
            f"- {e.source}: {sources.get(e.source, '')}{' — ' + e.section if e.section else ''}"
            for e in rule.evidence
        ]
        lines.append("")
    return "\n".join(lines)
