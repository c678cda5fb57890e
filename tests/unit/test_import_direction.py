"""The layers of docs/architecture.md, as the imports really run: no module imports upwards.

Every module of ``src/ketacds`` belongs to one layer (the longest matching prefix below);
it may import its own layer and the layers below it, never one above. A new module that
matches no prefix fails the test until it is given a layer here and in the docs.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from support import ROOT

SRC = ROOT / "src"

#: Bottom to top. Each entry: the layer's name (as in docs/architecture.md) and the module
#: prefixes in it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundations",
        (
            "ketacds._version",
            "ketacds._yaml",
            "ketacds.dosing",
            "ketacds.errors",
            "ketacds.jsoncodec",
            "ketacds.limits",
            "ketacds.markup",
            "ketacds.vocabulary",
            "ketacds.yamldoc",
        ),
    ),
    ("rules and models", ("ketacds.ruleset", "ketacds.models", "ketacds.cases")),
    ("terminology", ("ketacds.terminology",)),
    ("engine", ("ketacds.engine",)),
    ("reporting", ("ketacds.reporting",)),
    ("scenarios and lint", ("ketacds.scenarios", "ketacds.ruleset.lint")),
    ("adapters", ("ketacds.adapters",)),
    ("audit", ("ketacds.audit",)),
    ("service", ("ketacds.server",)),
    ("interface", ("ketacds.cli", "ketacds.batch", "ketacds.synthetic", "ketacds")),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that names ``module`` (or one of its parents)."""
    best: tuple[int, int] | None = None
    for index, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            names_it = module == prefix or module.startswith(prefix + ".")
            if names_it and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return None if best is None else best[0]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every ``ketacds`` module ``path`` imports (at any depth: in functions too), with its line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "ketacds":
                found += [(f"ketacds.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name == "ketacds" or name.startswith("ketacds.")]


def _modules() -> list[tuple[str, Path]]:
    return [(_module_name(path), path) for path in sorted((SRC / "ketacds").rglob("*.py"))]


def test_every_module_has_a_layer():
    assert [name for name, _ in _modules() if layer_of(name) is None] == []


def test_no_import_reaches_up():
    upward = []
    for name, path in _modules():
        mine = layer_of(name)
        assert mine is not None
        for imported, line in _imports(path):
            theirs = layer_of(imported)
            if name != "ketacds" and theirs is not None and theirs > mine:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line}: {name} ({LAYERS[mine][0]}) imports "
                    f"{imported} ({LAYERS[theirs][0]})"
                )
    assert upward == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The check is not vacuous: an engine module importing the CLI is caught."""
    module = tmp_path / "probe.py"
    module.write_text("def f():\n    from ketacds.cli import main\n", encoding="utf-8")
    assert _imports(module) == [("ketacds.cli", 2)]
    assert layer_of("ketacds.cli") > layer_of("ketacds.engine.api")


def test_the_architecture_page_lists_the_layers_in_this_order():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = page.split("## Layers", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([a-z][a-z ]+) \|", table, flags=re.MULTILINE)
    assert [row for row in rows if row != "layer"] == [name for name, _ in reversed(LAYERS)]
