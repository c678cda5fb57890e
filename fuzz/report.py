"""The fuzz report: counts, the first examples of each failure, and the exit status."""

from __future__ import annotations

from collections import Counter

import attrs

__all__ = ["FAILING", "HANG_SECONDS", "Report"]

#: Kinds that make the run fail.
FAILING = ("disagreement", "crash", "undocumented")
#: A case slower than this counts as a hang (reported; fatal only if it never ends).
HANG_SECONDS = 2.0
_EXAMPLES = 5


@attrs.define
class Report:
    """Counts over a run, and up to five examples of each kind of failure."""

    seed: int
    target: str
    cases: int = 0
    kinds: Counter[str] = attrs.field(factory=Counter)
    statuses: Counter[str] = attrs.field(factory=Counter)
    hangs: int = 0
    #: disagreements by how much they matter: "status" (another status), "reassuring"
    #: (durable's status more reassuring than the reference's)
    severities: Counter[str] = attrs.field(factory=Counter)
    examples: dict[str, list[tuple[int, str, str]]] = attrs.field(factory=dict)

    def add(
        self,
        index: int,
        kind: str,
        detail: str,
        seconds: float,
        status: str = "",
        name: str = "",
        severity: str = "",
    ) -> None:
        """Count one case: its kind (an Outcome kind, ``crash`` or ``hang-killed``) and how long it took."""
        self.cases += 1
        self.kinds[kind] += 1
        if severity:
            self.severities[severity] += 1
            if severity == "reassuring":
                self.severities["status"] += 1
        if status:
            self.statuses[status] += 1
        if seconds > HANG_SECONDS:
            self.hangs += 1
        if kind in (*FAILING, "hang-killed", "engine-error"):
            found = self.examples.setdefault(kind, [])
            if len(found) < _EXAMPLES:
                found.append((index, name, detail))

    @property
    def failed(self) -> bool:
        """Any disagreement, crash or undocumented exception (or a case that never ended)."""
        return any(self.kinds[kind] for kind in (*FAILING, "hang-killed"))

    def text(self) -> str:
        """The report as printed at the end of a run."""
        k = self.kinds
        lines = [
            f"fuzz target {self.target!r}, seed {self.seed}",
            f"  cases                         {self.cases:>8}",
            f"  assessed (both engines agree) {k['assessed']:>8}",
            f"  refused with InputError       {k['refused']:>8}",
            f"  engine errors (documented)    {k['engine-error']:>8}",
            f"  disagreements                 {k['disagreement']:>8}",
            f"    with another status         {self.severities['status']:>8}",
            f"    durable more reassuring     {self.severities['reassuring']:>8}",
            f"  crashes                       {k['crash']:>8}",
            f"  undocumented exceptions       {k['undocumented']:>8}",
            f"  hangs > {HANG_SECONDS:g} s                  {self.hangs:>8}  (killed: {k['hang-killed']})",
        ]
        if self.statuses:
            lines.append("  statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items())))
        for kind, found in sorted(self.examples.items()):
            lines.append(f"  first {kind} cases (replay: python -m fuzz --seed {self.seed} --show INDEX):")
            for index, name, detail in found:
                first = detail.strip().splitlines()[-1] if detail.strip() else ""
                lines.append(f"    #{index} from {name}: {first[:300]}")
        lines.append("FAILED" if self.failed else "OK")
        return "\n".join(lines)
