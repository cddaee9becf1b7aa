"""The kernel options of GUI hosts: --host and --qt-binding, as the CLI and kernelspecs see them."""

from __future__ import annotations

import dataclasses

import pytest

from cokernel.kernelspec import make_spec
from cokernel.options import KernelOptions, OptionError, parse_kernel_args


def test_qt_binding_is_pyside6_unless_chosen_and_matches_case_insensitively() -> None:
    assert KernelOptions().qt_binding == "PySide6"
    assert parse_kernel_args(["--host=qt", "--qt-binding=pyqt6"]).qt_binding == "PyQt6"
    assert parse_kernel_args(["--qt-binding", "PySide6"]).qt_binding == "PySide6"


def test_an_unknown_qt_binding_is_refused_with_the_choices() -> None:
    with pytest.raises(OptionError, match="PySide6, PyQt6"):
        parse_kernel_args(["--qt-binding=PyQt4"])


def test_a_kernelspec_carries_the_host_and_a_chosen_binding() -> None:
    options = parse_kernel_args(["--host=qt", "--qt-binding=PyQt6", "--backend=trio"])
    spec = make_spec("cokernel-qt", options=options)
    argv = spec["argv"]
    kernel_args = argv[argv.index("{connection_file}") + 1 :]
    assert parse_kernel_args(kernel_args) == dataclasses.replace(options, kernel_name="cokernel-qt")
    assert spec["metadata"]["host"] == "qt"
    tk_argv = make_spec("tk", options=KernelOptions(host="tk"))["argv"]
    assert not any("binding" in arg for arg in tk_argv), "the default binding is left out"
