"""cokernel.protocol._messages.Session: signing, verification and the faults that make a message drop."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jupyter_client.session import Session as ClientSession

from cokernel.protocol._messages import (
    DELIMITER,
    PROTOCOL_VERSION,
    ProtocolError,
    Session,
    reply_type,
)

pytestmark = pytest.mark.timeout(30)

KEY = b"a-test-key"


def signed(key: bytes, parts: list[bytes]) -> bytes:
    """HMAC-SHA256 of ``parts``, computed independently of the code under test."""
    return hmac.new(key, b"".join(parts), hashlib.sha256).hexdigest().encode()


def wire_parts(**overrides: Any) -> list[bytes]:
    """The four JSON parts of a valid kernel_info_request, with any part replaced."""
    parts = {
        "header": {
            "msg_id": "m1",
            "msg_type": "kernel_info_request",
            "session": "s",
            "username": "u",
            "date": "",
            "version": PROTOCOL_VERSION,
        },
        "parent_header": {},
        "metadata": {},
        "content": {},
    }
    encoded = {k: json.dumps(v).encode() for k, v in parts.items()}
    encoded.update(overrides)
    return [encoded["header"], encoded["parent_header"], encoded["metadata"], encoded["content"]]


def frames_for(
    parts: list[bytes], key: bytes = KEY, identities: tuple[bytes, ...] = (b"client",)
) -> list[bytes]:
    return [*identities, DELIMITER, signed(key, parts) if key else b"", *parts]


# -- signing ------------------------------------------------------------------------------------
def test_serialize_then_deserialize_gives_back_the_message_and_identities() -> None:
    session = Session(KEY)
    msg = session.msg(
        "execute_request", {"code": "1+1"}, metadata={"cellId": "c"}, buffers=[b"\x00\x01"]
    )
    frames = session.serialize(msg, [b"id-a", b"id-b"])

    identities, back = Session(KEY).deserialize(frames)

    assert identities == [b"id-a", b"id-b"]
    assert back["header"] == msg["header"]
    assert back["content"] == {"code": "1+1"}
    assert back["metadata"] == {"cellId": "c"}
    assert back["buffers"] == [b"\x00\x01"]


def test_signature_is_hmac_sha256_of_the_four_json_parts() -> None:
    session = Session(KEY)
    frames = session.serialize(session.msg("status", {"execution_state": "idle"}))
    split = frames.index(DELIMITER)
    assert frames[split + 1] == signed(KEY, frames[split + 2 : split + 6])


def test_verification_compares_signatures_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("cokernel.protocol._messages.hmac.compare_digest", spy)
    parts = wire_parts()
    Session(KEY).deserialize(frames_for(parts))
    assert calls == [(signed(KEY, parts), signed(KEY, parts))]


def test_messages_interoperate_with_jupyter_client_sessions() -> None:
    ours = Session(KEY)
    theirs = ClientSession(key=KEY, signature_scheme="hmac-sha256")

    frames = ours.serialize(ours.msg("kernel_info_reply", {"status": "ok"}), [b"ident"])
    identities, rest = theirs.feed_identities(frames)
    decoded = theirs.deserialize(rest)
    assert identities == [b"ident"]
    assert decoded["msg_type"] == "kernel_info_reply"
    assert decoded["content"] == {"status": "ok"}

    request = theirs.msg("kernel_info_request")
    _, back = ours.deserialize(theirs.serialize(request))
    assert back["header"]["msg_id"] == request["header"]["msg_id"]


def test_a_key_set_later_signs_and_checks_with_the_new_key() -> None:
    session = Session(KEY)
    session.key = b"another key"
    frames = session.serialize(session.msg("status", {"execution_state": "idle"}))
    split = frames.index(DELIMITER)
    assert frames[split + 1] == signed(b"another key", frames[split + 2 : split + 6])
    with pytest.raises(ProtocolError, match="invalid message signature"):
        session.deserialize(frames_for(wire_parts()))  # signed with KEY
    session.key = b""
    assert session.serialize(session.msg("status"))[1] == b""


def test_unsupported_signature_scheme_is_refused() -> None:
    with pytest.raises(ProtocolError, match="unsupported signature scheme"):
        Session(KEY, scheme="hmac-not-a-hash")


# -- faults that drop a message -----------------------------------------------------------------
def test_bad_signature_raises() -> None:
    parts = wire_parts()
    frames = [b"client", DELIMITER, signed(b"another key", parts), *parts]
    with pytest.raises(ProtocolError, match="invalid message signature"):
        Session(KEY).deserialize(frames)


def test_tampered_content_fails_the_signature_check() -> None:
    frames = frames_for(wire_parts())
    frames[-1] = b'{"code": "import os"}'
    with pytest.raises(ProtocolError, match="invalid message signature"):
        Session(KEY).deserialize(frames)


def test_unsigned_message_on_a_signed_connection_raises() -> None:
    with pytest.raises(ProtocolError, match="unsigned"):
        Session(KEY).deserialize(frames_for(wire_parts(), key=b""))


def test_replayed_message_raises() -> None:
    session = Session(KEY)
    frames = frames_for(wire_parts())
    session.deserialize(frames)
    with pytest.raises(ProtocolError, match="replayed"):
        session.deserialize(list(frames))


def test_replay_guard_forgets_signatures_beyond_its_window() -> None:
    session = Session(KEY, replay_window=2)
    first = frames_for(wire_parts(content=b'{"n": 0}'))
    session.deserialize(first)
    for n in (1, 2):
        session.deserialize(frames_for(wire_parts(content=json.dumps({"n": n}).encode())))
    session.deserialize(first)  # pushed out of the window by two newer messages


@pytest.mark.parametrize(
    "part",
    [b"{not json", b"\xff\xfe\x00", b""],
    ids=["broken-json", "not-utf8", "empty"],
)
def test_part_that_is_not_json_raises(part: bytes) -> None:
    # Correctly signed, so the fault found is the JSON one and not the signature.
    with pytest.raises(ProtocolError, match="not JSON"):
        Session(KEY).deserialize(frames_for(wire_parts(content=part)))


@pytest.mark.parametrize("name", ["header", "parent_header", "metadata", "content"])
@pytest.mark.parametrize("value", [b"[]", b"42", b'"text"', b"null"])
def test_part_that_is_not_an_object_raises(name: str, value: bytes) -> None:
    with pytest.raises(ProtocolError, match=f"{name} must be a JSON object"):
        Session(KEY).deserialize(frames_for(wire_parts(**{name: value})))


def test_header_without_msg_type_raises() -> None:
    header = json.dumps({"msg_id": "m1", "session": "s"}).encode()
    with pytest.raises(ProtocolError, match="msg_id and msg_type"):
        Session(KEY).deserialize(frames_for(wire_parts(header=header)))


def test_missing_delimiter_raises() -> None:
    frames = frames_for(wire_parts())
    frames.remove(DELIMITER)
    with pytest.raises(ProtocolError, match="delimiter"):
        Session(KEY).deserialize(frames)


def test_too_few_frames_after_the_delimiter_raises() -> None:
    frames = frames_for(wire_parts())[:-1]
    with pytest.raises(ProtocolError, match="needs 5"):
        Session(KEY).deserialize(frames)


def test_garbage_frames_raise() -> None:
    with pytest.raises(ProtocolError):
        Session(KEY).deserialize([b"\x00garbage", b"\xff" * 10])
    with pytest.raises(ProtocolError):
        Session(KEY).deserialize([])


def test_a_failed_message_does_not_poison_the_replay_guard() -> None:
    session = Session(KEY)
    parts = wire_parts()
    with pytest.raises(ProtocolError):
        session.deserialize([b"client", DELIMITER, signed(b"wrong", parts), *parts])
    session.deserialize(frames_for(parts))


# -- no key -------------------------------------------------------------------------------------
def test_empty_key_disables_signing() -> None:
    session = Session(b"")
    frames = session.serialize(session.msg("kernel_info_request"))
    assert frames[frames.index(DELIMITER) + 1] == b""
    _, msg = Session(b"").deserialize(frames)
    assert msg["header"]["msg_type"] == "kernel_info_request"
    # Without a key there is no signature to remember, hence no replay guard either.
    Session(b"").deserialize(frames_for(wire_parts(), key=b""))


# -- message construction -----------------------------------------------------------------------
def test_msg_sets_parent_and_carries_its_subshell_id() -> None:
    session = Session(KEY, username="kernel")
    request = session.msg("execute_request", {"code": ""})
    request["header"]["subshell_id"] = "sub-1"

    reply = session.msg("execute_reply", {"status": "ok"}, request)

    assert reply["parent_header"] == request["header"]
    assert reply["header"]["subshell_id"] == "sub-1"
    assert reply["header"]["version"] == PROTOCOL_VERSION
    assert reply["header"]["username"] == "kernel"
    assert reply["header"]["session"] == session.session_id


def test_header_dates_are_utc_iso_8601_with_microseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    session = Session(KEY)
    before = datetime.now(UTC)
    stamped = datetime.fromisoformat(session.header("status")["date"])
    after = datetime.now(UTC)
    assert stamped.utcoffset() == timedelta(0)
    assert before - timedelta(microseconds=1) <= stamped <= after + timedelta(microseconds=1)

    # The second's prefix is cached: a stamp in a later second, and one on a whole second,
    # still read back exactly (isoformat would drop the fraction of a whole second).
    for ns in (1_764_700_000_000_000_000, 1_764_700_001_000_123_456):
        monkeypatch.setattr("cokernel.protocol._messages.time.time_ns", lambda ns=ns: ns)
        date = session.header("status")["date"]
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, UTC)
        assert datetime.fromisoformat(date) == expected
        assert date == expected.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def test_msg_ids_are_unique_across_sessions() -> None:
    ids = {Session(KEY).header("status")["msg_id"] for _ in range(100)}
    one = Session(KEY)
    ids |= {one.header("status")["msg_id"] for _ in range(100)}
    assert len(ids) == 200


@pytest.mark.parametrize(
    ("request_type", "expected"),
    [
        ("execute_request", "execute_reply"),
        ("kernel_info_request", "kernel_info_reply"),
        ("foo_request", "foo_reply"),
        ("comm_msg", "comm_msg"),
    ],
)
def test_reply_type(request_type: str, expected: str) -> None:
    assert reply_type(request_type) == expected
