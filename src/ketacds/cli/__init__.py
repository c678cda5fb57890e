"""The ``ketacds`` command line: parses arguments, prints, and holds no clinical logic.

One module per command family, each a click command or group that :func:`main`
gathers: :mod:`~ketacds.cli.assess` (``ketacds assess``), :mod:`~ketacds.cli.batch`
(``ketacds batch``), :mod:`~ketacds.cli.rules` (``ketacds rules ...``),
:mod:`~ketacds.cli.scenarios` (``ketacds scenarios ...`` and ``ketacds explain``) and
:mod:`~ketacds.cli.serve` (``ketacds serve`` and ``ketacds feedback``);
:mod:`~ketacds.cli.options` holds the options several commands share.
The console script ``ketacds`` is :func:`main`; ``python -m ketacds.cli`` runs it too.
"""

from __future__ import annotations

import click

from ketacds._version import __version__
from ketacds.cli import batch, rules, scenarios, serve
from ketacds.cli.assess import assess

__all__ = ["main"]


@click.group()
@click.version_option(__version__, prog_name="ketacds")
def main() -> None:
    """Clinical decision support for ketamine and esketamine (advisory only)."""


main.add_command(assess)
main.add_command(rules.rules)
main.add_command(serve.serve)
main.add_command(serve.feedback)
main.add_command(scenarios.scenarios)
main.add_command(scenarios.explain)
main.add_command(batch.batch)
