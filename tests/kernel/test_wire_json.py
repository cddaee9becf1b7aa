"""The JSON of message parts (cokernel.protocol._messages.dumps/loads): the same bytes with
orjson and with the json module, valid JSON for a browser, and what each cannot take."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, date, datetime
from fractions import Fraction
from typing import Any

import pytest

from cokernel.protocol import _messages
from cokernel.protocol._messages import dumps, loads

pytestmark = pytest.mark.timeout(30)


class Colour(enum.Enum):
    red = 1


@dataclasses.dataclass
class Point:
    x: int


try:  # only the numpy case needs it: the rest of this module runs without numpy
    import numpy as np
except ImportError:
    np = None

#: numpy is an optional package (matplotlib brings it); the cases that use it need it.
NEEDS_NUMPY = pytest.mark.skipif(np is None, reason="numpy is not installed")

CONTENTS: dict[str, Any] = {
    "header": {"msg_id": "a_1_2", "msg_type": "status", "date": "2026-12-02T10:00:00+00:00"},
    "nested": {"data": {"text/plain": "é ✓ 🎉"}, "list": [1, 2.5, None, True, {"x": []}]},
    "non-finite": {"a": math.nan, "b": [math.inf, -math.inf, 1.5]},
    "dates": {"dt": datetime(2026, 12, 2, 10, 0, 0, 5, tzinfo=UTC), "d": date(2026, 12, 2)},
    "others": {
        "e": Colour.red,
        "p": Point(1),
        "b": b"raw",
        "s": {1},
        "t": (1, 2),
        "q": Fraction(1, 4),
    },
    "only-json": {"huge": 2**80, 7: "int key"},
    "floats": {"x": [0.1, 1e16, 1e-7, -0.0, 123456789.125]},
}
if np is not None:
    CONTENTS["numpy"] = {"f": np.float64(0.25), "i": np.int64(3), "a": np.arange(3)}
#: Every case, the numpy one skipped (not dropped) where numpy is missing.
CASES = [
    *(name for name in CONTENTS if name != "numpy"),
    pytest.param("numpy", marks=NEEDS_NUMPY),
]


@pytest.fixture
def without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_messages, "_orjson_dumps", None)
    monkeypatch.setattr(_messages, "_orjson_loads", None)


@pytest.mark.parametrize("name", CASES)
def test_orjson_and_the_json_module_give_the_same_bytes(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if _messages._orjson_dumps is None:
        pytest.skip("orjson is not installed (it has no build for Pyodide)")
    fast = dumps(CONTENTS[name])
    monkeypatch.setattr(_messages, "_orjson_dumps", None)
    if name == "floats":  # the same numbers; orjson spells 1e-07 as 1e-7
        assert json.loads(dumps(CONTENTS[name])) == json.loads(fast)
    else:
        assert dumps(CONTENTS[name]) == fast


@pytest.mark.parametrize("with_orjson", [True, False])
def test_nan_and_infinities_go_out_as_null(
    with_orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A browser's JSON.parse rejects NaN and Infinity, and Jupyter Server passes them on."""
    if not with_orjson:
        monkeypatch.setattr(_messages, "_orjson_dumps", None)
    elif _messages._orjson_dumps is None:
        pytest.skip("orjson is not installed (it has no build for Pyodide)")
    encoded = dumps(CONTENTS["non-finite"])
    assert encoded == b'{"a":null,"b":[null,null,1.5]}'
    json.loads(encoded, parse_constant=pytest.fail)  # strict JSON: no NaN/Infinity constants


@NEEDS_NUMPY
def test_numpy_values_become_json_numbers() -> None:
    assert json.loads(dumps(CONTENTS["numpy"])) == {"f": 0.25, "i": 3, "a": "array([0, 1, 2])"}


def test_values_json_cannot_say_become_json() -> None:
    assert json.loads(dumps(CONTENTS["dates"])) == {
        "dt": "2026-12-02T10:00:00.000005+00:00",
        "d": "2026-12-02",
    }
    assert json.loads(dumps(CONTENTS["others"])) == {
        "e": 1,
        "p": "Point(x=1)",
        "b": "raw",
        "s": [1],
        "t": [1, 2],
        "q": 0.25,
    }
    assert json.loads(dumps(CONTENTS["only-json"])) == {"huge": 2**80, "7": "int key"}


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"b":[true,null],"c":"\\u00e9"}',
        b'{"a":NaN,"b":Infinity}',  # not JSON, but Python's json takes it: so does the kernel
        b'{"a":"\\ud800"}',  # a lone surrogate escape
        b'{"a":123456789012345678901234567890}',
        b'{"a":-9223372036854775809,"b":18446744073709551616}',  # just beyond 64 bits
    ],
)
def test_loads_takes_what_the_json_module_takes(raw: bytes) -> None:
    expected = json.loads(raw)
    got = loads(raw)
    assert got.keys() == expected.keys()
    for key in got:
        if isinstance(got[key], float) and math.isnan(got[key]):
            assert math.isnan(expected[key])
        else:
            assert got[key] == expected[key]


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"a":}'])
def test_loads_refuses_what_is_not_json(raw: bytes, without_orjson: None) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (json's and orjson's errors differ in text)
        loads(raw)


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"a":}'])
def test_loads_refuses_what_is_not_json_through_orjson_too(raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        loads(raw)
