"""The case file's JSON schema (docs/case.schema.json) is generated from the pydantic model that validates case
files, so the documented schema and the one enforced cannot drift apart."""
from __future__ import annotations

import json
from pathlib import Path

from snncheck import case as cases

DOC = Path(__file__).resolve().parents[1] / "docs" / "case.schema.json"


def test_documented_schema_is_the_generated_one():
    """Catches: a field added to or changed in CaseSpec without regenerating docs/case.schema.json
    (`python -m snncheck.case --schema > docs/case.schema.json`)."""
    assert json.loads(DOC.read_text()) == json.loads(json.dumps(cases.json_schema()))


def test_schema_forbids_unknown_keys_everywhere():
    """Catches: a table of the schema that accepts unknown keys (an `[expect2]` typo would pass silently)."""
    schema = cases.json_schema()
    tables = [schema, *schema["$defs"].values()]
    assert all(t.get("additionalProperties") is False for t in tables), \
        [t.get("title") for t in tables if t.get("additionalProperties") is not False]
