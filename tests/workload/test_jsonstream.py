"""The streaming trace reader: same values as json.loads at any chunk size; bad JSON is a
clear error, never another exception or a hang."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simcluster.workload.kineto.jsonstream import TraceJSONError, iter_trace

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                   st.dictionaries(st.text(max_size=5), c,
                                                                   max_size=4)), max_leaves=12)
docs = st.fixed_dictionaries(
    {"traceEvents": st.lists(st.dictionaries(st.text(max_size=5), values, max_size=5),
                             max_size=8)},
    optional={"schemaVersion": st.integers(0, 10**9), "distributedInfo": values,
              "zz": values})


def _read(text: str, chunk: int) -> tuple[list, dict]:
    events, keys = [], {}
    for item in iter_trace(io.StringIO(text), chunk=chunk):
        if item.key is None:
            events.append(item.value)
        elif item.key != "traceEvents":
            keys[item.key] = item.value
    return events, keys


@settings(max_examples=150)
@given(docs, st.integers(1, 64), st.sampled_from([None, 1, 2]))
def test_same_as_json_loads(doc: dict, chunk: int, indent: int | None) -> None:
    text = json.dumps(doc, indent=indent)
    events, keys = _read(text, chunk)
    assert events == doc["traceEvents"]
    assert keys == {k: v for k, v in doc.items() if k != "traceEvents"}


@settings(max_examples=150)
@given(docs, st.integers(1, 64), st.data())
def test_truncated_text_is_an_error(doc: dict, chunk: int, data: st.DataObject) -> None:
    text = json.dumps(doc)
    cut = data.draw(st.integers(0, len(text) - 1))
    with pytest.raises(TraceJSONError):
        _read(text[:cut], chunk)


def test_numbers_split_across_chunks() -> None:
    events, keys = _read('{"a": 12345678, "traceEvents": [{"ts": 1.5e3}], "b": true}', 3)
    assert keys == {"a": 12345678, "b": True} and events == [{"ts": 1500.0}]


@pytest.mark.parametrize("text,msg", [
    ("[1, 2]", "expected a JSON object"),
    ('{"traceEvents": [1 2]}', "expected ',' or ']'"),
    ('{"a": 1} x', "extra data"),
    ('{"traceEvents": [{"a": }]}', "Expecting value"),
])
def test_malformed(text: str, msg: str) -> None:
    with pytest.raises(TraceJSONError, match=msg):
        _read(text, 4)
