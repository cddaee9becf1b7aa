"""The community conformance suite (jupyter_kernel_test) against cokernel, every test enabled.

jupyter_kernel_test starts its own kernel per class through jupyter_client; the session's
autouse ``isolated_env`` fixture (tests/conftest.py) is set up first, so those kernels keep their
history and connection files out of $HOME too.
"""

from __future__ import annotations

import jupyter_kernel_test

from helpers import KERNEL_NAME


class CokernelConformanceTests(jupyter_kernel_test.KernelTests):
    kernel_name = KERNEL_NAME

    language_name = "python"
    file_extension = ".py"

    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"

    completion_samples = [
        {"text": "zi", "matches": {"zip"}},
        {"text": "import itertools; itertools.chai", "matches": {"chain"}},
    ]

    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2", "for i in range(3):"]
    invalid_code_samples = ["import = 7q"]

    # IPython's `?` help goes to the frontend's pager as a "page" payload, not to stdout.
    code_page_something = "?print"

    code_generate_error = "raise ValueError('boom')"

    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(4)]", "result": "[0, 1, 4, 9]"},
        {"code": "'cokernel'.upper()", "result": "'COKERNEL'"},
    ]
    # Matches the first sample: the search subtests need three or more hits in history, which
    # the range and tail subtests provide by executing the samples again first.
    code_history_pattern = "1+2*"
    supported_history_operations = ("tail", "range", "search")

    code_display_data = [
        {
            "code": "from IPython.display import HTML, display; display(HTML('<b>x</b>'))",
            "mime": "text/html",
        },
        {
            "code": "from IPython.display import Math, display; display(Math(r'\\alpha'))",
            "mime": "text/latex",
        },
    ]

    code_inspect_sample = "zip"

    code_clear_output = "from IPython.display import clear_output; clear_output()"


class CokernelIopubWelcomeTests(jupyter_kernel_test.IopubWelcomeTests):
    kernel_name = KERNEL_NAME
    support_iopub_welcome = True
