"""Tools for auditors: ruleset diffs with their impact on patients, and the version record."""
