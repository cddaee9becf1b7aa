"""The Jupyter wire protocol (messaging spec 5.5): framing, signing and message constructors.

This module imports nothing else of the kernel. A message travels as::

    [identities..., b"<IDS|MSG>", signature, header, parent_header, metadata, content, buffers...]

and the signature is HMAC-SHA256 over the four JSON parts, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import numbers
import os
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, date, datetime
from datetime import time as dtime
from enum import Enum, StrEnum
from typing import Any, TypedDict

PROTOCOL_VERSION = "5.5"
DELIMITER = b"<IDS|MSG>"


class Channel(StrEnum):
    shell = "shell"
    control = "control"
    stdin = "stdin"
    iopub = "iopub"
    hb = "hb"


class MsgType(StrEnum):
    """Every message a kernel receives; a request's reply is its name with ``_reply``.

    The kernel's handler table (:data:`cokernel.kernel._handlers.HANDLERS`) is keyed by these;
    ``input_reply`` goes to the stdin bridge instead."""

    execute_request = "execute_request"
    inspect_request = "inspect_request"
    complete_request = "complete_request"
    history_request = "history_request"
    is_complete_request = "is_complete_request"
    connect_request = "connect_request"
    comm_info_request = "comm_info_request"
    kernel_info_request = "kernel_info_request"
    shutdown_request = "shutdown_request"
    interrupt_request = "interrupt_request"
    debug_request = "debug_request"
    usage_request = "usage_request"
    create_subshell_request = "create_subshell_request"
    delete_subshell_request = "delete_subshell_request"
    list_subshell_request = "list_subshell_request"
    comm_open = "comm_open"
    comm_msg = "comm_msg"
    comm_close = "comm_close"
    input_reply = "input_reply"


class Header(TypedDict, total=False):
    msg_id: str
    msg_type: str
    username: str
    session: str
    date: str
    version: str
    subshell_id: str | None


class Message(TypedDict):
    header: dict[str, Any]
    parent_header: dict[str, Any]
    metadata: dict[str, Any]
    content: dict[str, Any]
    buffers: list[bytes]


class ProtocolError(ValueError):
    """A message could not be decoded or failed its signature check; it must be dropped."""


def reply_type(msg_type: str) -> str:
    """The reply name of a request: ``execute_request`` -> ``execute_reply``."""
    return msg_type[: -len("_request")] + "_reply" if msg_type.endswith("_request") else msg_type


# The date and time of the last whole second a header was stamped in: the prefix of every
# timestamp within that second (``isoformat`` costs 2.5 us, four times per round trip).
_stamped_second: tuple[int, str] = (-1, "")


def utcnow() -> str:
    """Now in UTC, ISO 8601 with microseconds: ``2026-12-02T07:04:44.123456+00:00``."""
    global _stamped_second
    ns = time.time_ns()
    second, micros = divmod(ns // 1000, 1_000_000)
    cached = _stamped_second  # one read: other threads may replace it meanwhile
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _stamped_second = cached
    return f"{cached[1]}.{micros:06d}+00:00"


def _keyed_mac(key: bytes, digest: Any) -> Any:
    """An HMAC keyed with ``key``: the C object under ``hmac.HMAC`` where OpenSSL computes it.

    Both have ``copy``, ``update`` and ``hexdigest``, and give the same digests. The Python
    wrapper adds a Python call to each: signing a message (copy, four updates, hexdigest) took
    4.2 us through it and 2.9 us on the C object, five times per execute (CPython 3.11)."""
    mac = hmac.new(key, digestmod=digest)
    inner = getattr(mac, "_hmac", None)  # not there where OpenSSL lacks the digest
    if inner is not None and all(hasattr(inner, name) for name in ("copy", "update", "hexdigest")):
        return inner
    return mac


def new_id() -> str:
    return uuid.uuid4().hex


def _json_default(obj: object) -> object:
    """What JSON cannot say natively: dates as ISO 8601, numbers of other types (numpy's) as
    numbers, an enum as its value, bytes as text, sets as lists, anything else as its repr."""
    if isinstance(obj, datetime | date | dtime):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN and infinity (no JSON for them) replaced by None (null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


# One encoder for every message: ``json.dumps`` with options builds a new one per call, and a
# message has four parts. ``encode`` keeps no state between calls, so threads may share it.
_encode = json.JSONEncoder(
    default=_json_default, ensure_ascii=False, separators=(",", ":"), allow_nan=False
).encode

# orjson, where installed, encodes a header in 0.3 us against 5.8 us for the json module (and
# decodes one in 0.6 against 3.4): 16 parts per execute. The options keep its output the json
# module's: dates and dataclasses go through _json_default as they do there. What orjson does
# not take (integers beyond 64 bits, non-string keys, lone surrogates, nesting beyond 254
# levels) falls back to the json module, so the two give the same messages, up to the spelling
# of a float's exponent (orjson writes 1e-7 where the json module writes 1e-07).
try:
    import orjson
except ImportError:  # Pyodide, or not installed: the json module alone
    orjson = None  # type: ignore[assignment]
if orjson is not None:
    _ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    _orjson_dumps: Any = orjson.dumps
    _orjson_loads: Any = orjson.loads
    _ORJSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONEncodeError, orjson.JSONDecodeError)
else:
    _ORJSON_OPTIONS, _orjson_dumps, _orjson_loads, _ORJSON_ERRORS = 0, None, None, ()


def dumps(obj: object) -> bytes:
    """One message part as JSON bytes: compact, UTF-8, NaN and infinities as null (a browser's
    ``JSON.parse`` rejects them)."""
    if type(obj) is dict and not obj:
        return b"{}"  # most parent headers, metadata and contents of a status
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(obj, default=_json_default, option=_ORJSON_OPTIONS)  # type: ignore[no-any-return]
        except _ORJSON_ERRORS:
            pass  # what only the json module takes: see above
    try:
        text = _encode(obj)
    except ValueError as e:
        if "Out of range float values" not in str(e):
            raise
        text = _encode(_finite(obj))
    return text.encode("utf-8", "surrogateescape")


# 19 digits in a row: an integer orjson may decode as a float (beyond 64 bits it does).
_LONG_DIGITS = re.compile(rb"\d{19}")


def loads(part: bytes) -> Any:
    """One message part decoded (``json.loads``, through orjson where it can)."""
    if _orjson_loads is not None and _LONG_DIGITS.search(part) is None:
        try:
            return _orjson_loads(part)
        except _ORJSON_ERRORS:
            pass  # NaN literals, lone surrogate escapes, huge integers: the json module's
    return json.loads(part)


class Session:
    """Builds, signs, serialises and verifies messages for one kernel.

    ``key`` empty disables signing (the spec's rule). The replay guard remembers the
    signatures of the last ``replay_window`` accepted messages and rejects a repeat.
    """

    def __init__(
        self,
        key: bytes = b"",
        *,
        scheme: str = "hmac-sha256",
        username: str = "kernel",
        session_id: str | None = None,
        replay_window: int = 65536,
    ) -> None:
        algorithm = scheme.removeprefix("hmac-")
        if algorithm not in hashlib.algorithms_available:
            raise ProtocolError(f"unsupported signature scheme {scheme!r}")
        self._digest = getattr(hashlib, algorithm, None) or (
            lambda data=b"": hashlib.new(algorithm, data)
        )
        self.key = key
        self.username = username
        self.session_id = session_id or new_id()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        # msg_id = a random per-session prefix and a counter: unique like uuid4, without a
        # getrandom() call per message (four of them per execute round trip).
        self._id_prefix = f"{new_id()[:12]}_{os.getpid()}_"
        self._counter = itertools.count(1)
        self._replay_window = replay_window

    @property
    def key(self) -> bytes:
        """The signing key; empty disables signing. Setting it re-keys signing and checking."""
        return self._key

    @key.setter
    def key(self, key: bytes) -> None:
        self._key = key
        # Keyed once: copying a keyed HMAC skips hashing the padded key for every message.
        self._mac = _keyed_mac(key, self._digest) if key else None

    @property
    def session(self) -> str:
        """The session id, under jupyter_client's attribute name (``kernel.session.session``)."""
        return self.session_id

    # -- building ---------------------------------------------------------------------------
    def header(self, msg_type: str, *, subshell_id: str | None = None) -> dict[str, Any]:
        header: dict[str, Any] = {
            "msg_id": f"{self._id_prefix}{next(self._counter)}",
            "msg_type": msg_type,
            "username": self.username,
            "session": self.session_id,
            "date": utcnow(),
            "version": PROTOCOL_VERSION,
        }
        if subshell_id is not None:
            header["subshell_id"] = subshell_id
        return header

    def msg(
        self,
        msg_type: str,
        content: dict[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> Message:
        """A new message whose parent is ``parent`` (a whole message or its header)."""
        parent_header: Mapping[str, Any] = parent.get("header", parent) if parent else {}
        subshell = parent_header.get("subshell_id") if parent_header else None
        if not isinstance(subshell, str):
            subshell = None
        return {
            "header": self.header(msg_type, subshell_id=subshell),
            "parent_header": dict(parent_header) if parent_header else {},
            "metadata": metadata or {},
            "content": content or {},
            "buffers": buffers or [],
        }

    def send(
        self,
        stream: Any,
        msg_or_type: Message | str,
        content: dict[str, Any] | None = None,
        parent: Mapping[str, Any] | None = None,
        ident: bytes | list[bytes] | None = None,
        buffers: list[bytes] | None = None,
        track: bool = False,
        header: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Message:
        """jupyter_client's ``Session.send`` signature, for libraries that send their own messages.

        ``stream`` is an object of the kernel's that delivers a built message through a
        ``cokernel_send(msg, identities)`` method (``get_ipython().kernel.iopub_socket``).
        Returns the message sent.
        """
        deliver = getattr(stream, "cokernel_send", None)
        if deliver is None:
            raise TypeError(
                f"cokernel's session sends through the kernel's own streams "
                f"(get_ipython().kernel.iopub_socket), not {stream!r}"
            )
        if isinstance(msg_or_type, str):
            msg = self.msg(msg_or_type, content, parent, metadata=metadata, buffers=buffers)
            if header:
                msg["header"].update(header)
        else:
            msg = msg_or_type
            if buffers is not None:
                msg["buffers"] = buffers
        identities = [ident] if isinstance(ident, bytes) else list(ident) if ident else None
        deliver(msg, identities)
        return msg

    # -- wire -------------------------------------------------------------------------------
    def sign(self, parts: list[bytes]) -> bytes:
        if self._mac is None:
            return b""
        mac = self._mac.copy()
        for part in parts:
            mac.update(part)
        digest: str = mac.hexdigest()
        return digest.encode("ascii")

    def serialize(self, msg: Message, identities: list[bytes] | None = None) -> list[bytes]:
        parts = [
            dumps(msg["header"]),
            dumps(msg["parent_header"]),
            dumps(msg["metadata"]),
            dumps(msg["content"]),
        ]
        frames = [*(identities or []), DELIMITER, self.sign(parts), *parts]
        frames.extend(bytes(b) for b in msg.get("buffers") or [])
        return frames

    def deserialize(self, frames: list[bytes]) -> tuple[list[bytes], Message]:
        """Split, verify and decode wire frames; raises :class:`ProtocolError` on any fault."""
        try:
            split = frames.index(DELIMITER)
        except ValueError:
            raise ProtocolError("no <IDS|MSG> delimiter in message frames") from None
        identities, rest = frames[:split], frames[split + 1 :]
        if len(rest) < 5:
            raise ProtocolError(f"message has {len(rest)} frames after the delimiter, needs 5")
        signature, parts, buffers = rest[0], rest[1:5], rest[5:]
        if self._mac is not None:
            if not signature:
                raise ProtocolError("unsigned message on a signed connection")
            if not hmac.compare_digest(signature, self.sign(parts)):
                raise ProtocolError("invalid message signature")
            if signature in self._seen:
                raise ProtocolError("replayed message signature")
            self._seen[signature] = None
            if len(self._seen) > self._replay_window:
                self._seen.popitem(last=False)
        try:
            header, parent, metadata, content = (loads(p) for p in parts)
        except (ValueError, UnicodeDecodeError) as e:
            raise ProtocolError(f"message part is not JSON: {e}") from None
        for name, part in (
            ("header", header),
            ("parent_header", parent),
            ("metadata", metadata),
            ("content", content),
        ):
            if not isinstance(part, dict):
                raise ProtocolError(f"{name} must be a JSON object, got {type(part).__name__}")
        if not isinstance(header.get("msg_type"), str) or not isinstance(header.get("msg_id"), str):
            raise ProtocolError("header lacks a string msg_id and msg_type")
        return identities, {
            "header": header,
            "parent_header": parent,
            "metadata": metadata,
            "content": content,
            "buffers": list(buffers),
        }
