"""Request decoding and payload event building, without a server."""

from __future__ import annotations

import json

import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

from ctloop.serving.decode import frame_from_v1, frame_from_v2
from ctloop.serving.payload import REQUEST_TYPE, RESPONSE_TYPE, EventContext, build_events

pytestmark = pytest.mark.unit
NUM, CAT = ["a", "b"], ["c"]


def test_v1_records_rows_and_missing_values() -> None:
    f = frame_from_v1({"instances": [{"a": 1, "b": 2.5, "c": "x"}, {"a": None, "b": 0, "c": None}]}, NUM, CAT)
    assert f["a"].isna().tolist() == [False, True] and f["c"].tolist() == ["x", None]
    g = frame_from_v1({"instances": [[1, 2.5, "x"]]}, NUM, CAT)
    assert g.iloc[0].tolist() == [1.0, 2.5, "x"]
    assert frame_from_v1(b'{"instances": [[1, 2, "y"]]}', NUM, CAT)["c"].tolist() == ["y"]


@pytest.mark.parametrize(("body", "field"), [
    ({"instances": [{"a": 1, "c": "x"}]}, "instances[0].b: missing feature"),
    ({"instances": [{"a": True, "b": 1, "c": "x"}]}, "instances[0].a: expected a number"),
    ({"instances": [{"a": 1, "b": 1, "c": 3}]}, "instances[0].c: expected a string"),
    ({"instances": [[1, 2]]}, "instances[0]: wrong shape"),
    ({"instances": [[1, 2, "x"], {"a": 1}]}, "instances[1]: wrong shape"),
    ({"instances": []}, "instances: expected a non-empty list"),
    ({"rows": []}, "instances: missing"),
    (b"{nope", "body: not valid JSON"),
])
def test_v1_errors_name_the_field(body: object, field: str) -> None:
    with pytest.raises(InvalidInput, match=None) as e:
        frame_from_v1(body, NUM, CAT)
    assert field in str(e.value)


def _req(*inputs: InferInput) -> InferRequest:
    return InferRequest(model_name="m", infer_inputs=list(inputs))


def test_v2_inputs_and_errors() -> None:
    ok = [InferInput("a", [2], "FP64", [1.0, 2.0]), InferInput("b", [2, 1], "INT64", [[3], [4]]),
          InferInput("c", [2], "BYTES", ["x", "y"])]
    f = frame_from_v2(_req(*ok), NUM, CAT)
    assert f["b"].tolist() == [3.0, 4.0] and f["c"].tolist() == ["x", "y"]
    cases = [
        ([ok[0], ok[2]], "inputs.b: missing feature"),
        ([ok[0], ok[1], InferInput("c", [2], "FP32", [1, 2])], "inputs.c: wrong datatype"),
        ([ok[0], InferInput("b", [3], "INT64", [1, 2, 3]), ok[2]], "inputs.b: wrong shape"),
        ([ok[0], InferInput("b", [2], "INT64", [1]), ok[2]], "inputs.b: wrong shape"),
        ([ok[0], InferInput("b", [2], "FP64", [1, "2"]), ok[2]], "inputs.b.data[1]: expected a number"),
        ([*ok, InferInput("z", [2], "FP64", [1, 2])], "inputs.z: unknown input"),
    ]
    for inputs, field in cases:
        with pytest.raises(InvalidInput) as e:
            frame_from_v2(_req(*inputs), NUM, CAT)
        assert field in str(e.value), (field, str(e.value))


def test_events_are_binary_cloudevents_sharing_id() -> None:
    ctx = EventContext(inferenceservicename="churn", namespace="ml")
    (h1, b1), (h2, b2) = build_events("abc", b'{"instances": []}', b'{"predictions": []}', "src", ctx)
    assert h1["ce-id"] == h2["ce-id"] == "abc"
    assert (h1["ce-type"], h2["ce-type"]) == (REQUEST_TYPE, RESPONSE_TYPE)
    for h in (h1, h2):
        assert (h["ce-source"], h["ce-inferenceservicename"], h["ce-namespace"], h["ce-component"],
                h["ce-endpoint"], h["ce-specversion"]) == (
                    "src", "churn", "ml", "predictor", "default", "1.0")
        assert h["content-type"] == "application/json"
    assert json.loads(b1) == {"instances": []} and json.loads(b2) == {"predictions": []}
