"""The fuzz report: counts, the first examples of each failure, and the exit status."""

from __future__ import annotations

from collections import Counter

import attrs

__all__ = ["FAILING", "HANG_SECONDS", "Report"]

#: Kinds that make the run fail.
FAILING = ("disagreement", "crash", "undocumented")
#: Kinds that make a run of the loader, cli or service target fail (and any hang over 2 s).
FAILING_RAW = (*FAILING, "traceback", "exit-code", "hang", "http-5xx", "connection")
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
    #: one line printed under the title (the cli target: its measured start-up)
    note: str = ""
    #: the slowest cases, as (seconds, index)
    slowest: list[tuple[float, int]] = attrs.field(factory=list)

    @property
    def _raw(self) -> bool:
        return self.target not in ("engine", "selftest")

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
            if self._raw and kind not in FAILING_RAW and kind != "hang-killed":
                found = self.examples.setdefault("over 2 s", [])
                if len(found) < _EXAMPLES:
                    found.append((index, name, f"{seconds:.2f} s ({kind})"))
        self.slowest = sorted([*self.slowest, (seconds, index)], reverse=True)[:3]
        if kind in (*FAILING_RAW, "hang-killed", "engine-error"):
            found = self.examples.setdefault(kind, [])
            if len(found) < _EXAMPLES:
                found.append((index, name, detail))

    @property
    def failures(self) -> int:
        """Cases that failed (for loader, cli and service: also every case over 2 s)."""
        failing = sum(self.kinds[kind] for kind in (*FAILING_RAW, "hang-killed"))
        if self._raw:
            slow = self.hangs - self.kinds["hang"] - self.kinds["hang-killed"]
            failing += max(0, slow)
        return failing

    @property
    def failed(self) -> bool:
        """Any disagreement, crash or undocumented exception (or a case that never ended).

        For the loader, cli and service targets also any traceback, exit code other than
        0/2/3, HTTP 5xx, dropped connection or case over 2 s.
        """
        if self._raw:
            return self.failures > 0
        return any(self.kinds[kind] for kind in (*FAILING, "hang-killed"))

    def text(self) -> str:
        """The report as printed at the end of a run."""
        if self._raw:
            return self._raw_text()
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

    def _raw_text(self) -> str:
        k = self.kinds
        refused = {
            "loader": "refused with InputError",
            "cli": "refused: exit 2, one line",
            "service": "refused: HTTP 4xx",
        }
        accepted = {
            "loader": "accepted (assessed)",
            "cli": "accepted: exit 0",
            "service": "accepted: HTTP 2xx",
        }
        errors = {"loader": "engine errors (documented)", "cli": "engine errors: exit 3", "service": ""}
        lines = [f"fuzz target {self.target!r}, seed {self.seed}"]
        if self.note:
            lines.append(f"  {self.note}")
        lines += [
            f"  cases                         {self.cases:>8}",
            f"  {accepted.get(self.target, 'accepted'):<30}{k['assessed']:>8}",
            f"  {refused.get(self.target, 'refused'):<30}{k['refused']:>8}",
        ]
        if errors.get(self.target):
            lines.append(f"  {errors[self.target]:<30}{k['engine-error']:>8}")
        lines.append(f"  failures                      {self.failures:>8}")
        rows = [
            ("undocumented exceptions", "undocumented"),
            ("tracebacks on stderr", "traceback"),
            ("exit codes not 0/2/3", "exit-code"),
            ("HTTP 5xx", "http-5xx"),
            ("connections dropped", "connection"),
            ("crashes", "crash"),
        ]
        shown = {"loader": {"undocumented", "crash"}, "cli": {"traceback", "exit-code", "crash"}}
        for label, kind in rows:
            if kind in shown.get(self.target, {"http-5xx", "connection", "crash"}) or k[kind]:
                lines.append(f"    {label:<28}{k[kind]:>8}")
        lines.append(f"    hangs > {HANG_SECONDS:g} s{'':<17}{self.hangs:>8}  (killed: {k['hang-killed']})")
        if self.slowest:
            lines.append("  slowest: " + ", ".join(f"#{i} {s:.2f} s" for s, i in self.slowest))
        if self.statuses:
            lines.append("  statuses: " + ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items())))
        for kind, found in sorted(self.examples.items()):
            lines.append(
                f"  first {kind} cases "
                f"(replay: python -m fuzz --target {self.target} --seed {self.seed} --show INDEX):"
            )
            for index, name, detail in found:
                first = detail.strip().splitlines()[-1] if detail.strip() else ""
                lines.append(f"    #{index} from {name}: {first[:300]}")
        lines.append("FAILED" if self.failed else "OK")
        return "\n".join(lines)
