"""Batch runs in this process: output files, bad records, context defaults, resume and summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch_support import outputs, write_cases
from ketacds import Assessment, InputError
from ketacds.batch import BatchOptions, Interrupted, NdjsonReader, run_batch
from ketacds.batch.readers import Item
from ketacds.batch.work import assessment_line

NOW = "2026-11-21T09:00:00+00:00"


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def options(source: Path, out: Path, **changes) -> BatchOptions:
    return BatchOptions(input=source, out=out, reader=NdjsonReader(), workers=1, chunk_size=7, **changes)


class StopAfter:
    """A progress sink that presses Ctrl-C after some chunks have been committed."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.started: tuple[int | None, int] | None = None

    def start(self, total: int | None, done: int) -> None:
        self.started = (total, done)

    def advance(self, records: int) -> None:
        self.chunks -= 1
        if self.chunks == 0:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    bad = {3: "{not json", 10: '{"patient": {"weight": "70 stone"}}', 20: '{"patient": {}}'}
    return write_cases(tmp_path_factory.mktemp("input") / "cases.ndjson", 40, bad=bad)


@pytest.fixture(scope="module")
def complete(source: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("complete") / "results"
    run_batch(options(source, out))
    return out


class TestOutput:
    def test_every_record_gives_exactly_one_line_in_input_order(self, complete: Path):
        """40 cases and 3 bad lines: 40 assessments and 3 errors, each record once, in order."""
        assessments = lines(complete / "assessments.ndjson")
        errors = lines(complete / "errors.ndjson")
        records = [line["record"] for line in assessments] + [line["record"] for line in errors]

        assert (40, 3) == (len(assessments), len(errors))
        assert list(range(43)) == sorted(records)
        assert sorted(line["record"] for line in assessments) == [line["record"] for line in assessments]

    def test_bad_records_are_listed_with_their_reason(self, complete: Path):
        """Each bad line is in errors.ndjson with its source line, error type and reason."""
        errors = lines(complete / "errors.ndjson")

        assert [
            ("cases.ndjson:4", "InputError", "(line): invalid JSON: Expecting property name"),
            ("cases.ndjson:11", "InputError", "patient.weight: unknown unit 'stone'"),
            ("cases.ndjson:21", "InputError", "context.route: is required"),
        ] == [(e["source"], e["error"], e["reason"].split(" enclosed")[0]) for e in errors]

    def test_each_line_holds_an_assessment_that_reads_back(self, complete: Path):
        """A line is the record's place, its patient id and an Assessment as to_json writes it."""
        line = lines(complete / "assessments.ndjson")[0]
        assessment = Assessment.from_dict(line["assessment"])

        assert ("synthetic-0000000", 0, "cases.ndjson:1") == (line["patient"], line["record"], line["source"])
        assert json.dumps(line["assessment"], sort_keys=True, ensure_ascii=False) == assessment.to_json()

    def test_the_same_input_gives_the_same_bytes(self, source: Path, complete: Path, tmp_path: Path):
        """A second run over the same input writes byte-identical results."""
        run_batch(options(source, tmp_path / "again"))

        assert outputs(complete) == outputs(tmp_path / "again")

    def test_summary_files(self, complete: Path):
        """summary.json counts add up; summary.md has the status table; the chart is an SVG."""
        summary = json.loads((complete / "summary.json").read_text())

        assert (43, 40, 3) == (summary["records"], summary["assessed"], summary["errors"])
        assert 40 == sum(summary["statuses"].values())
        assert "| status | patients | share | |" in (complete / "summary.md").read_text()
        assert (complete / "status-counts.svg").read_text().startswith("<svg")
        assert not (complete / "parts").exists()

    def test_line_is_json_of_the_whole_with_sorted_keys(self, engine, now):
        """The hand-assembled line is exactly json.dumps of the whole with sorted keys."""
        from ketacds import Context, Patient, PatientRecord

        assessment = engine.assess(
            PatientRecord(patient=Patient(id="p")), Context(route="ketamine-iv", jurisdiction="US", now=now)
        )
        item = Item(5, "in.ndjson:6", b"")
        whole = {"assessment": assessment.to_dict(), "patient": "p", "record": 5, "source": "in.ndjson:6"}

        assert json.dumps(whole, sort_keys=True, ensure_ascii=False) == assessment_line(item, "p", assessment)


class TestContext:
    def test_defaults_fill_in_what_a_case_lacks(self, tmp_path: Path):
        """Cases without a context are assessed with the default route, jurisdiction and now."""
        source = tmp_path / "bare.ndjson"
        source.write_text(
            '{"patient": {"id": "a"}}\n{"patient": {"id": "b"}, "context": {"jurisdiction": "EU"}}\n'
        )
        defaults = (("jurisdiction", "US"), ("now", NOW), ("route", "esketamine-nasal"))
        run_batch(options(source, tmp_path / "out", context=defaults))
        provenance = [line["assessment"]["provenance"] for line in lines(tmp_path / "out/assessments.ndjson")]

        assert [("esketamine-nasal", "US"), ("esketamine-nasal", "EU")] == [
            (p["route"], p["jurisdiction"]) for p in provenance
        ]

    def test_override_replaces_the_cases_own_context(self, tmp_path: Path):
        """With override, the defaults win over each case's own context fields."""
        source = tmp_path / "own.ndjson"
        own = {"jurisdiction": "EU", "route": "ketamine-iv", "now": "2026-01-01T00:00:00Z"}
        source.write_text(json.dumps({"patient": {"id": "b"}, "context": own}) + "\n")
        run_batch(options(source, tmp_path / "out", context=(("jurisdiction", "US"),), override=True))
        line = lines(tmp_path / "out/assessments.ndjson")[0]

        assert "US" == line["assessment"]["provenance"]["jurisdiction"]


class TestResume:
    def test_an_interrupted_run_resumes_to_the_same_output(
        self, source: Path, complete: Path, tmp_path: Path
    ):
        """Ctrl-C after two chunks keeps them; --resume does the rest; the output is the uninterrupted one."""
        out = tmp_path / "results"
        with pytest.raises(Interrupted, match="stopped after 2 of 7 chunks"):
            run_batch(options(source, out), StopAfter(2))
        progress = StopAfter(0)
        run_batch(options(source, out, resume=True), progress)

        assert (43, 14) == progress.started
        assert outputs(complete) == outputs(out)

    def test_stale_temporary_files_are_discarded(self, source: Path, complete: Path, tmp_path: Path):
        """A chunk half-written when the run was killed is redone from scratch."""
        out = tmp_path / "results"
        with pytest.raises(Interrupted):
            run_batch(options(source, out), StopAfter(1))
        (out / "parts" / ".000001.part.tmp").write_text("half a chunk")
        run_batch(options(source, out, resume=True))

        assert outputs(complete) == outputs(out)

    def test_resuming_a_complete_run_changes_nothing(self, source: Path, complete: Path):
        """--resume on a finished run reports its summary and writes nothing."""
        before = outputs(complete)
        result = run_batch(options(source, complete, resume=True))

        assert (0, 40) == (result.records, result.summary.assessed)
        assert before == outputs(complete)

    def test_a_different_run_is_not_resumed(self, source: Path, complete: Path, tmp_path: Path):
        """Resuming with other options (here the chunk size) is refused, naming what differs."""
        with pytest.raises(InputError, match="differs in chunk_size"):
            run_batch(
                BatchOptions(input=source, out=complete, reader=NdjsonReader(), chunk_size=3, resume=True)
            )

    def test_changed_input_is_not_resumed(self, tmp_path: Path):
        """If the input changed since the run started, --resume refuses."""
        source = write_cases(tmp_path / "cases.ndjson", 20)
        with pytest.raises(Interrupted):
            run_batch(options(source, tmp_path / "out"), StopAfter(1))
        write_cases(source, 21)

        with pytest.raises(InputError, match="input_sha256"):
            run_batch(options(source, tmp_path / "out", resume=True))

    def test_an_existing_run_is_never_overwritten(self, source: Path, complete: Path):
        """Starting a run in a directory that holds one is refused (use --resume or another --out)."""
        with pytest.raises(InputError, match="is not empty"):
            run_batch(options(source, complete))

    def test_nothing_to_resume(self, source: Path, tmp_path: Path):
        """--resume where no run was started is an input error."""
        with pytest.raises(InputError, match="no run to resume"):
            run_batch(options(source, tmp_path / "empty", resume=True))


class TestWorker:
    def test_an_engine_left_unusable_is_rebuilt_for_the_next_record(self, tmp_path: Path):
        """A durable_rules failure makes its record an error; the worker builds a new Engine for the next."""
        from batch_support import bundled_rules
        from ketacds.batch.work import Chunk, WorkerConfig, assess_chunk, prepare

        source = write_cases(tmp_path / "cases.ndjson", 2)
        items = tuple(NdjsonReader().items(source))
        config = WorkerConfig(reader=NdjsonReader(), digest=bundled_rules().digest, context=(("now", NOW),))
        broken = prepare(config, bundled_rules())
        context = json.loads(items[0].payload)["context"]
        broken.warm(context["route"], context["jurisdiction"])._broken = "a simulated engine error"
        result = assess_chunk(config, Chunk(0, (items[0], items[0])))

        assert 1 == len(result.errors)
        assert "a simulated engine error" in result.errors[0]
        assert 1 == len(result.assessments)
        assert broken is not prepare(config)
