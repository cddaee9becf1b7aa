"""The protocol layer: Jupyter messages and their signing, and the kernel's record of a request.

Imports nothing else of cokernel but :mod:`cokernel.options`. The wire format lives in
``_messages`` (re-exported here); ``_request`` is one incoming request and the context variable
that names the request running code answers to; ``_droplog`` and ``_recorder`` log what is
dropped and record what comes in.
"""

from cokernel.protocol._messages import DELIMITER as DELIMITER
from cokernel.protocol._messages import PROTOCOL_VERSION as PROTOCOL_VERSION
from cokernel.protocol._messages import Channel as Channel
from cokernel.protocol._messages import Message as Message
from cokernel.protocol._messages import MsgType as MsgType
from cokernel.protocol._messages import ProtocolError as ProtocolError
from cokernel.protocol._messages import Session as Session
from cokernel.protocol._messages import reply_type as reply_type

__all__ = [
    "DELIMITER",
    "PROTOCOL_VERSION",
    "Channel",
    "Message",
    "MsgType",
    "ProtocolError",
    "Session",
    "reply_type",
]
