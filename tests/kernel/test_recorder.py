"""``--record`` / ``COKERNEL_RECORD``: one JSON line per received message, without code or data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from cokernel.options import KernelOptions, OptionError, parse_kernel_args
from cokernel.protocol._recorder import RECORD_ENV, record_path
from cokernel_harness.client import BlockingClient

KernelPair = tuple[KernelManager, BlockingKernelClient]


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def send_on_subshell(
    wire: BlockingClient,
    msg_type: str,
    content: dict[str, Any],
    subshell: str,
    buffers: list[bytes],
) -> str:
    msg = wire.kc.session.msg(msg_type, content)
    msg["header"]["subshell_id"] = subshell
    wire.kc.session.send(wire.kc.shell_channel.socket, msg, buffers=buffers)
    return str(msg["header"]["msg_id"])


def test_record_option_parses_and_round_trips() -> None:
    options = parse_kernel_args(["--record", "/tmp/x.jsonl"])
    assert options.record == "/tmp/x.jsonl"
    assert parse_kernel_args(options.to_args()) == options
    with pytest.raises(OptionError, match="--record needs a file path"):
        parse_kernel_args(["--record="])


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RECORD_ENV, raising=False)
    assert record_path(KernelOptions().record) is None
    monkeypatch.setenv(RECORD_ENV, "/tmp/env.jsonl")
    assert record_path(None) == "/tmp/env.jsonl"
    assert record_path("/tmp/opt.jsonl") == "/tmp/opt.jsonl"


@pytest.mark.timeout(60)
def test_records_shape_of_each_message_and_no_code_or_values(
    launch_kernel: Callable[..., KernelPair], tmp_path: Path
) -> None:
    path = tmp_path / "rec.jsonl"
    _, kc = launch_kernel(f"--record={path}")
    wire = BlockingClient(kc)
    reply = wire.request("control", "create_subshell_request", {})
    subshell = reply["subshell_id"]
    made = wire.run(
        "import ipywidgets as w\nsecret_code_marker = 1\ns = w.IntSlider()\nprint(s.comm.comm_id)"
    )
    comm_id = made.stdout.strip()
    update = {"method": "update", "state": {"value": 424242}, "buffer_paths": [["extra"]]}
    sent = send_on_subshell(
        wire, "comm_msg", {"comm_id": comm_id, "data": update}, subshell, [b"secret-bytes"]
    )
    wire.status(sent, "idle")
    asked = wire.execute("input('?')", allow_stdin=True)
    wire.input_reply("secret-answer", parent=wire.input_request(asked).msg)
    wire.collect(asked)
    wire.request("control", "delete_subshell_request", {"subshell_id": subshell})

    text = path.read_text(encoding="utf-8")
    for private in ("secret_code_marker", "424242", "secret-bytes", "secret-answer", "input("):
        assert private not in text
    lines = read_lines(path)
    # start_kernel asks for kernel_info (until one is answered) first.
    assert lines[0]["msg_type"] == "kernel_info_request"
    kinds = [
        (line["channel"], line["msg_type"])
        for line in lines
        if line["msg_type"] != "kernel_info_request"
    ]
    assert kinds[:2] == [("control", "create_subshell_request"), ("shell", "execute_request")]
    assert ("stdin", "input_reply") in kinds
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))
    comm = next(line for line in lines if line["msg_type"] == "comm_msg")
    assert comm == {
        "n": comm["n"],
        "t": comm["t"],
        "pid": comm["pid"],
        "channel": "shell",
        "msg_type": "comm_msg",
        "subshell_id": subshell,
        "comm_id": comm_id,
        "method": "update",
        "state_keys": ["value"],
        "buffers": 1,
    }
    execute = next(line for line in lines if line["msg_type"] == "execute_request")
    assert execute["subshell_id"] is None
    assert execute["stop_on_error"] is True
    assert "code" not in execute
    delete = next(line for line in lines if line["msg_type"] == "delete_subshell_request")
    assert delete["content"] == {"subshell_id": subshell}


@pytest.mark.timeout(60)
def test_an_unwritable_record_path_leaves_the_kernel_working(
    launch_kernel: Callable[..., KernelPair], tmp_path: Path
) -> None:
    _, kc = launch_kernel(f"--record={tmp_path / 'missing-dir' / 'rec.jsonl'}")
    assert BlockingClient(kc).run("print(6 * 7)").stdout == "42\n"
