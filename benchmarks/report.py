"""Small helpers shared by the benchmark scripts: percentiles, Markdown tables, report sections."""

from __future__ import annotations

from pathlib import Path


def percentile(sorted_ns: list[int], q: float) -> float:
    """The q-th percentile (nearest rank) of sorted nanoseconds, in microseconds."""
    index = min(len(sorted_ns) - 1, max(0, round(q * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1000


class Table:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""

    def __init__(self, head: list[str]) -> None:
        self.head = head
        self.rows: list[list[str]] = []

    def row(self, *cells: str) -> None:
        self.rows.append(list(cells))

    def lines(self) -> list[str]:
        rule = ["---"] + ["---:"] * (len(self.head) - 1)
        return ["| " + " | ".join(cells) + " |" for cells in (self.head, rule, *self.rows)]


def publish(text: str, path: Path | None, name: str) -> None:
    """Print a report, and put it in its section of ``path`` (when given)."""
    print(text)
    if path is not None:
        replace_section(path, name, text)


def replace_section(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` in ``path``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    document = path.read_text(encoding="utf-8")
    if begin not in document or end not in document:
        raise SystemExit(f"{path} has no {begin} ... {end} section to replace")
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{tail}", encoding="utf-8")
