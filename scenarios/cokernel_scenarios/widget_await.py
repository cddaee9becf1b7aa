"""A cell awaits a slider's value that the page sets while the cell awaits.

The deadlock concurrent kernels exist for: in a sequential kernel the page's ``comm_msg``
(method ``update``) queues behind the very cell that waits for it. The cell bounds its own wait,
so a kernel that deadlocks fails this scenario with the cell's TimeoutError instead of hanging.
Under JupyterLab's profiles the update comes on a subshell and its handler runs off the cell's
event loop; a kernel that then fails to wake that loop leaves the cell asleep until its own
deadline's timer wakes it, which the cell notices (the value is there, the deadline passed).
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_harness.widgets import Widgets
from cokernel_scenarios.scenario import PATIENCE, PYTHON, Scenario, expect, expect_ok

VALUE = 42

CELL = f"""\
import anyio
import ipywidgets as _widgets
_slider = _widgets.IntSlider(value=0, description="harness")
_arrived = anyio.Event()

def _on_value(change):
    if change["new"] == {VALUE}:
        _arrived.set()

_slider.observe(_on_value, names="value")
print("waiting for the slider")
with anyio.fail_after({PATIENCE!r}) as _scope:
    await _arrived.wait()
if anyio.current_time() >= _scope.deadline:
    # The value came, but the loop only looked when the deadline's timer woke it.
    print("the cell woke only at its deadline")
print("the cell received", _slider.value)
"""


class WidgetAwait(Scenario):
    name = "widget_await"
    description = "a cell awaits an IntSlider value the page sets while the cell awaits"
    requires = PYTHON | {"anyio", "comms", "ipywidgets"}

    async def run(self, fe: Frontend) -> None:
        widgets = Widgets(fe)
        start = len(fe.log)
        cell = fe.execute(CELL)
        slider = await widgets.wait_for_model(
            lambda m: m.model_name == "IntSliderModel" and m.state.get("description") == "harness",
            what="the cell's IntSlider comm_open",
            start=start,
        )
        expect(
            slider.version is not None and slider.version.split(".")[0] == "2",
            "comm_open metadata.version 2.x (ipywidgets protocol)",
            f"version {slider.version!r}",
            fe,
        )
        # As a person would: the slider is moved once the cell says it waits (a change sent
        # while a cell's synchronous part still runs may be handled before its observe()).
        await fe.wait_for(
            lambda m: (
                m.msg_type == "stream" and "waiting for the slider" in m.content.get("text", "")
            ),
            what="the cell saying it waits for the slider",
            timeout=PATIENCE,
        )
        widgets.set_state(slider.comm_id, {"value": VALUE})
        execution = await fe.collect(cell, timeout=PATIENCE + 30)
        expect(
            execution.reply.get("ename") != "TimeoutError",
            "the page's update to reach the cell while it awaits",
            f"the cell gave up after {PATIENCE:g} s (TimeoutError): the comm_msg was not "
            "handled while the cell awaited (it queued behind the cell)",
            fe,
        )
        expect_ok(execution, "the cell awaiting the slider", fe)
        expect(
            "woke only at its deadline" not in execution.stdout,
            "the cell to wake when the page's update is handled",
            f"the update was handled (the value arrived) but the cell slept on until its "
            f"{PATIENCE:g} s deadline woke it: setting the value did not wake the cell's event "
            f"loop (frontend profile {fe.profile.name})",
            fe,
        )
        expect(
            f"the cell received {VALUE}" in execution.stdout,
            f"the cell to print 'the cell received {VALUE}'",
            f"stdout {execution.stdout!r}",
            fe,
        )
        # ipywidgets 8 echoes the value the page set (echo_update), as the page expects.
        await widgets.wait_for_echo(slider.comm_id, timeout=PATIENCE)
        expect(
            widgets.get(slider.comm_id).value == VALUE,
            f"the page's slider to show {VALUE}",
            f"{widgets.get(slider.comm_id).value!r}",
            fe,
        )
