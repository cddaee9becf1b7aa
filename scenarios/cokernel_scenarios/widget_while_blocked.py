"""A slider moved while the main shell's cell blocks in ``time.sleep`` is handled before it ends.

This is what JupyterLab's "comms over subshells" is for: the page sends the slider's
``comm_msg`` on the subshell of the widget's comm target, so the kernel can run the widget's
handlers while the main shell is stuck in a blocking call. The slider's observer copies the
value (doubled) into a second widget, whose ``update`` the page then receives; ipywidgets 8
also echoes the value it was sent (``echo_update``).

The main cell blocks on a :class:`~cokernel_scenarios.gate.Gate`: the harness moves the slider,
waits for the echo and the mirror's update, and only then opens the gate, so both arriving
before the cell's ``execute_reply`` is a fact by construction, not by timing. A page that
sends widget messages on the main shell (profile ``no-subshells``, or a kernel without
subshells) queues them behind the cell by protocol design: the scenario is unsupported there.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import WaitTimeout
from cokernel_harness.widgets import WidgetModel, Widgets
from cokernel_scenarios.gate import Gate, start_blocking_cell
from cokernel_scenarios.scenario import (
    PATIENCE,
    PYTHON,
    Scenario,
    ScenarioFailure,
    ScenarioUnsupported,
    expect,
    expect_ok,
    last,
)

VALUE = 21
SETUP = """\
import ipywidgets as _widgets
_blocked_slider = _widgets.IntSlider(value=0, description="harness-blocked")
_blocked_mirror = _widgets.IntText(value=0, description="harness-mirror")

def _blocked_copy(change):
    _blocked_mirror.value = change["new"] * 2

_blocked_slider.observe(_blocked_copy, names="value")
"""
REPORT = "print('slider', _blocked_slider.value, 'mirror', _blocked_mirror.value)"


class WidgetWhileBlocked(Scenario):
    name = "widget_while_blocked"
    description = (
        "a slider moved while the main cell blocks in time.sleep is handled before it ends"
    )
    requires = PYTHON | {"comms", "ipywidgets"}

    async def run(self, fe: Frontend) -> None:
        if not fe.comms.active:
            raise ScenarioUnsupported(
                f"the page (frontend profile {fe.profile.name}"
                + ("" if fe.comms.supports_subshells else ", a kernel without subshells")
                + ") sends widget messages on the main shell, behind the blocked cell"
            )
        widgets = Widgets(fe)
        slider, mirror = await self._create_widgets(fe, widgets)
        with Gate() as gate:
            cell = await start_blocking_cell(fe, gate)
            widgets.set_state(slider.comm_id, {"value": VALUE})
            try:
                await widgets.wait_for_echo(slider.comm_id, timeout=PATIENCE)
                await widgets.wait_for_state(
                    mirror.comm_id,
                    lambda state: state.get("value") == 2 * VALUE,
                    timeout=PATIENCE,
                    what="the mirror's update from the slider's observer",
                )
            except WaitTimeout as e:
                gate.open()
                await fe.collect(cell, timeout=PATIENCE + 30)
                raise ScenarioFailure(
                    "the slider's echo_update and the mirror's update while the cell blocks",
                    f"none within {PATIENCE:g} s of moving it ({e})".split("\n", 1)[0],
                    last(fe),
                ) from None
            handled_at = len(fe.log)
            gate.open()
            execution = await fe.collect(cell, timeout=PATIENCE + 30)
        expect_ok(execution, "the blocking cell", fe)
        reply_at = fe.log.index(await fe.reply_message(cell))
        expect(
            handled_at <= reply_at,
            "the widget handled before the blocking cell's execute_reply",
            "the reply first",
            fe,
        )
        report = await fe.run(REPORT)
        expect_ok(report, "reading the widgets back", fe)
        expect(
            f"slider {VALUE} mirror {2 * VALUE}" in report.stdout,
            f"the kernel's widgets at slider {VALUE}, mirror {2 * VALUE}",
            repr(report.stdout),
            fe,
        )

    async def _create_widgets(
        self, fe: Frontend, widgets: Widgets
    ) -> tuple[WidgetModel, WidgetModel]:
        """Run SETUP; the page's models of the slider (routed to a subshell) and the mirror."""
        start = len(fe.log)
        expect_ok(await fe.run(SETUP), "creating the slider and its mirror", fe)
        slider = await widgets.wait_for_model(
            lambda m: m.state.get("description") == "harness-blocked",
            what="the slider's comm_open",
            start=start,
        )
        mirror = await widgets.wait_for_model(
            lambda m: m.state.get("description") == "harness-mirror",
            what="the mirror's comm_open",
            start=start,
        )
        expect(
            widgets.subshells.get(slider.comm_id) is not None,
            f"the slider's messages routed to a subshell (profile {fe.profile.name})",
            "the main shell",
            fe,
        )
        return slider, mirror
