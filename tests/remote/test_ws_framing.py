"""The websocket transport's wire formats agree with Jupyter Server's own (de)serializers."""

from __future__ import annotations

import json

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)

from cokernel_harness.websocket import decode_legacy, decode_v1, encode_legacy, encode_v1

PARTS = [
    json.dumps({"msg_id": "a", "msg_type": "comm_msg", "subshell_id": "s1"}).encode(),
    b"{}",
    b"{}",
    json.dumps({"comm_id": "c", "data": {"x": 1}}).encode(),
    b"\x00\x01binary buffer\xff",
    b"",
]


def test_v1_frames_match_jupyter_server() -> None:
    assert encode_v1("shell", PARTS) == serialize_msg_to_ws_v1(PARTS, "shell")
    assert decode_v1(serialize_msg_to_ws_v1(PARTS, "iopub")) == ("iopub", PARTS)
    channel, parts = deserialize_msg_from_ws_v1(encode_v1("control", PARTS))
    assert (channel, parts) == ("control", PARTS)


def test_legacy_frames_match_jupyter_server() -> None:
    msg = {
        "header": {"msg_id": "a", "msg_type": "comm_msg", "subshell_id": "s1"},
        "parent_header": {},
        "metadata": {},
        "content": {"comm_id": "c", "data": {}},
        "buffers": [b"\x00\x01", b"more"],
    }
    frame = encode_legacy("shell", msg)
    assert isinstance(frame, bytes)
    theirs = deserialize_binary_message(frame)
    assert theirs.pop("channel") == "shell"
    assert theirs == msg
    sent = serialize_binary_message({**msg, "channel": "iopub"})
    assert decode_legacy(sent) == ("iopub", msg)
    text = encode_legacy("stdin", {**msg, "buffers": []})
    assert isinstance(text, str)
    assert json.loads(text)["channel"] == "stdin"


@pytest.mark.parametrize(
    "frame",
    [b"", b"\x05\x00\x00\x00\x00\x00\x00\x00", serialize_msg_to_ws_v1(PARTS, "shell")[:30]],
)
def test_malformed_v1_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(ValueError, match="v1"):
        decode_v1(frame)


@pytest.mark.parametrize("frame", [b"\x00", "[1, 2]", '{"header": {}}'])
def test_malformed_legacy_frames_are_refused(frame: bytes | str) -> None:
    with pytest.raises(ValueError, match="frame"):
        decode_legacy(frame)
