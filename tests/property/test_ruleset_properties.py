"""Properties of rulesets: random rulesets run the same on every backend, the canonical
form round-trips, and any mapping either loads or raises RulesetError."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketacds import Engine, RulesetError, load_ruleset
from ketacds.ruleset.ir import canonical, from_canonical
from ketacds.ruleset.load import bundled_rules_dir
from ketacds.ruleset.plan import stratify
from strategies import contexts, random_rulesets, records

_BUNDLED = load_ruleset()


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ruleset=random_rulesets(), patients=st.lists(st.tuples(records, contexts), min_size=1, max_size=4))
def test_engines_agree_on_random_rulesets(ruleset, patients):
    """For random rules and random patients, durable_rules, the reference evaluator and the
    compiled backend fire alike."""
    stratify(ruleset.rules)  # the generator only makes stratifiable rulesets
    with Engine.from_ruleset(ruleset) as engine:
        for record, context in patients:
            _, durable = engine.evaluate(record, context)
            _, reference = engine.evaluate(record, context, backend="reference")
            _, compiled = engine.evaluate(record, context, backend="compiled")

            assert reference == durable == compiled


def test_canonical_form_round_trips():
    """The bundled ruleset's canonical form reads back into an equal ruleset, same digest."""
    data = json.loads(json.dumps(canonical(_BUNDLED)))
    back = from_canonical(data)

    assert (_BUNDLED, _BUNDLED.digest) == (back, back.digest)


@given(ruleset=random_rulesets())
def test_random_canonical_forms_round_trip(ruleset):
    """Random rulesets round-trip through their canonical JSON exactly.

    What is random is the rules; the value sets and the reference register are the
    bundled ones (round-tripped by the test above), left out here: reading back their
    thousands of codes took a quarter of a second per example.
    """
    ruleset = attrs.evolve(ruleset, valuesets=(), facts=())
    assert ruleset == from_canonical(json.loads(json.dumps(canonical(ruleset))))


_SMALL: list[Path] = []


def _small_ruleset_dir(factory) -> Path:
    """A copy of the bundled rulesets whose manifest lists only interactions.yaml (made once)."""
    if not _SMALL:
        root = factory.mktemp("rules") / "rulesets"
        shutil.copytree(bundled_rules_dir(), root)
        manifest = (root / "manifest.yaml").read_text()
        start, end = manifest.index("files:"), manifest.index("routes:")
        (root / "manifest.yaml").write_text(
            manifest[:start] + "files:\n  - interactions.yaml\n\n" + manifest[end:]
        )
        _SMALL.append(root)
    return _SMALL[0]


_JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 200)
    | st.sampled_from(["active", "KCDS-X-001", "trial", "in", "any"]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "title",
                    "when",
                    "then",
                    "not",
                    "any",
                    "all",
                    "trial",
                    "patient",
                    "in",
                    "gt",
                    "flag",
                    "finding",
                    "message",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    rule=st.dictionaries(
        st.sampled_from(
            [
                "id",
                "title",
                "category",
                "severity",
                "routes",
                "jurisdictions",
                "when",
                "then",
                "rationale",
                "evidence",
                "confidence",
            ]
        ),
        _JSONISH,
        max_size=11,
    )
)
def test_any_mapping_loads_or_raises_ruleset_error(tmp_path_factory, rule):
    """A rule file holding any mapping either loads, or raises RulesetError (never another error)."""
    root = _small_ruleset_dir(tmp_path_factory)
    (root / "interactions.yaml").write_text(json.dumps({"rules": [rule]}))
    with contextlib.suppress(RulesetError):
        load_ruleset(root)


def test_a_broken_canonical_form_is_a_value_error():
    """Data that is not a canonical ruleset is refused with ValueError."""
    data = canonical(_BUNDLED)

    with pytest.raises(ValueError, match="ketacds-ruleset/1"):
        from_canonical({**data, "format": "something-else"})
