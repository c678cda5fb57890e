"""``python -m ketacds.cli``: the ``ketacds`` command line."""

from ketacds.cli import main

main()
