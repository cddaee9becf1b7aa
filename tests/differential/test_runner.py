"""The runner's normalization: it must erase run-to-run noise and nothing a user would see."""

from __future__ import annotations

import os
from pathlib import Path

import ipykernel
from nbformat import v4

import cokernel
from differential.runner import (
    KERNEL_DIRS,
    _fill_in_lost_fd_output,
    _take_back_spilled_fd_output,
    normalize_outputs,
    normalize_text,
)

COKERNEL_DIR = str(Path(cokernel.__file__).parent)
IPYKERNEL_DIR = str(Path(ipykernel.__file__).parent)


def test_both_kernels_machinery_is_known() -> None:
    assert COKERNEL_DIR + os.sep in KERNEL_DIRS
    assert IPYKERNEL_DIR + os.sep in KERNEL_DIRS


def test_noise_is_erased() -> None:
    text = (
        "\x1b[0;31m<object at 0x7f12ab34cd56>\x1b[0m\n"
        "CPU times: user 26 μs, sys: 3 µs, total: 29 us\nWall time: 1.5 ms\n"
        "Cell In[12], line 3\n"
        "/tmp/ipykernel_4242/1850221797.py:2: UserWarning: w\n"
        "/tmp/cokernel_77/3190016511.py:2: UserWarning: w\n"
        "invalid syntax (3190016511.py, line 1)\n"
    )
    assert normalize_text(text) == (
        "<object at 0xADDRESS>\n"
        "CPU times: user TIME, sys: TIME, total: TIME\nWall time: TIME\n"
        "Cell In[N], line 3\n"
        "CELLFILE:2: UserWarning: w\n"
        "CELLFILE:2: UserWarning: w\n"
        "invalid syntax (CELLFILE, line 1)\n"
    )


def test_what_users_see_is_kept() -> None:
    assert normalize_text("5 items in 3 seconds, 0x1F, In [4]: 12 ms\n") == (
        "5 items in 3 seconds, 0x1F, In [4]: TIME\n"
    )


def test_kernel_frames_leave_text_tracebacks() -> None:
    text = (
        "  + Exception Group Traceback (most recent call last):\n"
        f'  |   File "{COKERNEL_DIR}/shell.py", line 416, in run_code\n'
        "  |     cell.run_sync(exec, code_obj, global_ns, local_ns)\n"
        "  |            ^^^^^^^^^\n"
        '  |   File "/tmp/cokernel_1/2.py", line 1, in <module>\n'
        "  |     raise ExceptionGroup('many', [ValueError('one')])\n"
        "  | ExceptionGroup: many (1 sub-exception)\n"
    )
    assert normalize_text(text) == (
        "  + Exception Group Traceback (most recent call last):\n"
        '  |   File "CELLFILE", line 1, in <module>\n'
        "  |     raise ExceptionGroup('many', [ValueError('one')])\n"
        "  | ExceptionGroup: many (1 sub-exception)\n"
    )


def test_kernel_frames_and_hidden_markers_leave_error_outputs() -> None:
    error = v4.new_output(
        "error",
        ename="E",
        evalue="v",
        traceback=[
            "-----",
            "Cell In[3], line 1\n----> 1 f()\n",
            "    [... skipping hidden 1 frame]\n",
            f"File {IPYKERNEL_DIR}/kernelbase.py:1, in raw_input(self)\n",
            "E: v",
        ],
    )
    [out] = normalize_outputs([error], normalize_text)
    assert out["traceback"] == ["-----", "Cell In[N], line 1\n----> 1 f()\n", "E: v"]


def test_adjacent_streams_of_one_name_merge_and_others_keep_their_order() -> None:
    outputs = [
        v4.new_output("stream", name="stdout", text="a"),
        v4.new_output("stream", name="stdout", text="\n"),
        v4.new_output("stream", name="stderr", text="e\n"),
        v4.new_output("stream", name="stdout", text="b\n"),
    ]
    assert [(o["name"], o["text"]) for o in normalize_outputs(outputs, normalize_text)] == [
        ("stdout", "a\n"),
        ("stderr", "e\n"),
        ("stdout", "b\n"),
    ]


def test_spilled_fd_output_goes_back_to_the_cell_that_wrote_it() -> None:
    writer = v4.new_code_cell("os.system('echo x')", metadata={"differential": {"fd_spill": True}})
    after = v4.new_code_cell("status")
    after.outputs = [
        v4.new_output("stream", name="stdout", text="x\n"),
        v4.new_output("execute_result", data={"text/plain": "0"}, execution_count=2),
    ]
    later = v4.new_code_cell("1")
    later.outputs = [v4.new_output("stream", name="stderr", text="late\n")]
    next_writer = v4.new_code_cell("os.write(1, b'y')", metadata=writer.metadata)
    next_writer.outputs = [v4.new_output("stream", name="stdout", text="y")]
    _take_back_spilled_fd_output([writer, after, later, next_writer])
    assert [o["text"] for o in writer.outputs] == ["x\n", "late\n"]
    assert [o["output_type"] for o in after.outputs] == ["execute_result"]
    assert later.outputs == []
    assert [o["text"] for o in next_writer.outputs] == ["y"]


def test_declared_fd_output_stands_in_only_for_output_that_never_arrived() -> None:
    declared = {"differential": {"fd_spill": {"stdout": "x\n"}}}
    lost = v4.new_code_cell("os.write(1, b'x\\n')", metadata=declared)
    arrived = v4.new_code_cell("os.write(1, b'x\\n')", metadata=declared)
    arrived.outputs = [v4.new_output("stream", name="stdout", text="x\nmore\n")]
    _fill_in_lost_fd_output([lost, arrived])
    assert [(o["name"], o["text"]) for o in lost.outputs] == [("stdout", "x\n")]
    assert [o["text"] for o in arrived.outputs] == ["x\nmore\n"]


def test_declared_fd_output_completes_a_write_whose_last_piece_was_lost() -> None:
    # CI, 2026-12-03: under PYTHONUNBUFFERED=1 a child's print wrote its text and its newline
    # apart, and ipykernel flushed the newline after the cell's idle.
    declared = {"differential": {"fd_spill": {"stdout": "from subprocess.run\n"}}}
    cut = v4.new_code_cell("subprocess.run(...)", metadata=declared)
    cut.outputs = [v4.new_output("stream", name="stdout", text="from subprocess.run")]
    other = v4.new_code_cell("subprocess.run(...)", metadata=declared)
    other.outputs = [v4.new_output("stream", name="stdout", text="something else")]
    _fill_in_lost_fd_output([cut, other])
    assert [o["text"] for o in cut.outputs] == ["from subprocess.run\n"]
    assert [o["text"] for o in other.outputs] == ["something else"]
