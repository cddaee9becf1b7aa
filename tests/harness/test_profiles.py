"""Frontend profiles: the simulated page sends comm traffic as JupyterLab does.

The expectations come from two places: JupyterLab's source (``packages/services/src/kernel/
comm.ts``: a subshell per comm target or per comm, asked for when a comm object is made, the
page's own comm_open still on the main shell, deletion when the last comm goes), and a
recording of what real JupyterLab 4.6 sent through the same widget interaction, kept under
``tests/fixtures/jupyterlab-4.6/`` (one file per setting, ``widgets-*.jsonl``). Both are compared by shape
(:mod:`cokernel_harness.recording`): ids normalized, channel order left free.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cokernel_harness.frontend import Frontend
from cokernel_harness.profiles import (
    JUPYTERLAB,
    JUPYTERLAB_PER_COMM,
    NO_SUBSHELLS,
    PROFILES,
    CommRouter,
    FrontendProfile,
    UnknownProfile,
    get_profile,
)
from cokernel_harness.recording import TrafficShape, describe_sent, load, shape
from cokernel_harness.widgets import Widgets

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "jupyterlab-4.6"
# The recording of each profile's setting ("Kernel Comms over subshells").
RECORDINGS = {
    JUPYTERLAB.name: "widgets-per-target.jsonl",
    JUPYTERLAB_PER_COMM.name: "widgets-per-comm.jsonl",
    NO_SUBSHELLS.name: "widgets-off.jsonl",
}

SLIDER = (
    "import ipywidgets as w\n"
    "from IPython.display import display\n"
    "s = w.IntSlider(value=0, description='recorded')\n"
    "display(s)\n"
)


@pytest.fixture
def anyio_backend() -> str:
    # The harness's own loop does not change what a profile sends; the scenario suite plays
    # the jupyterlab profile on trio too.
    return "asyncio"


async def play_widget_interaction(
    profile: FrontendProfile, *, close: bool = False
) -> tuple[TrafficShape, Frontend]:
    """The recorded session: a notebook page connects (its widget manager loads the kernel's
    widgets), a cell shows a slider, the user drags it three times, a cell runs, two more
    drags, a cell runs. With ``close``, a last cell closes the slider (not recorded)."""
    async with Frontend.launch("cokernel", profile=profile) as fe:
        widgets = Widgets(fe)
        # A fresh kernel has not imported ipywidgets: it closes the control comm, and the
        # manager falls back to comm_info_request.
        assert await widgets.load_from_kernel() == "comm_info"
        start = len(fe.log)
        shown = await fe.run(SLIDER)
        assert shown.reply["status"] == "ok", shown.reply
        slider = await widgets.wait_for_model(
            lambda m: m.state.get("description") == "recorded", start=start
        )
        for drags in (3, 2):
            for value in range(1, drags + 1):
                widgets.set_state(slider.comm_id, {"value": value})
            await widgets.wait_for_echo(slider.comm_id, timeout=30)
            ran = await fe.run("s.value")
            assert ran.reply["status"] == "ok", ran.reply
        if close:
            closed = await fe.run("s.close()")
            assert closed.reply["status"] == "ok", closed.reply
            await fe.wait_for(
                lambda m: m.msg_type == "comm_close" and m.content.get("comm_id") == slider.comm_id,
                what="the slider's comm_close",
            )
        # Every subshell request the page made is answered before it goes away.
        for msg_id, (_channel, msg, _) in list(fe.sent.items()):
            if msg["header"]["msg_type"].endswith("_subshell_request"):
                await fe.reply(msg_id)
        sent = [describe_sent(channel, msg) for channel, msg, _ in fe.sent.values()]
    return shape(sent), fe


# -- the profiles, as JupyterLab's source says ---------------------------------------------------
async def test_jupyterlab_shares_one_subshell_for_the_widget_target() -> None:
    traffic, fe = await play_widget_interaction(JUPYTERLAB)
    # The control comm's subshell (deleted when the kernel closed the comm), then one for the
    # jupyter.widget target, which the slider's three comms (layout, style, slider) share.
    assert (traffic.created, traffic.deleted, traffic.deleted_unused) == (2, 1, 1)
    assert (traffic.comms_on_subshells, traffic.subshells_used) == (1, 1)
    assert ("comm_msg", "update", "shell", "subshell") in traffic.routes
    assert ("comm_msg", "update", "shell", "main") not in traffic.routes
    assert ("comm_msg", "request_states", "shell", "main") in traffic.routes
    assert ("comm_info_request", "", "shell", "main") in traffic.routes
    assert fe.comms.deleted == fe.comms.created[:1]
    # Every header JupyterLab sends has subshell_id, null off a subshell.
    assert all("subshell_id" in msg["header"] for _, msg, _ in fe.sent.values())


async def test_jupyterlab_per_comm_makes_one_subshell_per_comm_and_deletes_on_close() -> None:
    traffic, fe = await play_widget_interaction(JUPYTERLAB_PER_COMM, close=True)
    # Control comm, then layout, style and slider: four; the slider's is deleted when the
    # kernel closes it (the control comm's only if its id was known when the kernel closed it).
    assert traffic.created == 4
    assert traffic.subshells_used == 1
    assert traffic.deleted - traffic.deleted_unused == 1
    assert traffic.deleted_before_page_close == 1
    assert set(fe.comms.deleted) <= set(fe.comms.created)


async def test_no_subshells_sends_everything_on_the_main_shell() -> None:
    traffic, fe = await play_widget_interaction(NO_SUBSHELLS)
    assert (traffic.created, traffic.deleted, traffic.subshells_used) == (0, 0, 0)
    assert {place for *_, place in traffic.routes} == {"main"}
    assert all("subshell_id" not in msg["header"] for _, msg, _ in fe.sent.values())


async def test_the_widget_manager_loads_existing_widgets_through_the_control_comm(
    frontend: Frontend,
) -> None:
    frontend.profile = "jupyterlab"
    run = await frontend.run(SLIDER)
    assert run.reply["status"] == "ok"
    page = Widgets(frontend)
    page.models.clear()  # a page that connects now has seen none of the comm_opens
    page._seen = len(frontend.log)
    assert await page.load_from_kernel() == "control"
    (slider,) = [m for m in page.models.values() if m.state.get("description") == "recorded"]
    assert slider.model_name == "IntSliderModel"
    # Three widget comms made without a comm_open share the jupyter.widget subshell.
    assert await frontend.comm_ready(slider.comm_id) is not None
    page.set_state(slider.comm_id, {"value": 5})
    await page.wait_for_echo(slider.comm_id, timeout=30)


async def test_the_page_s_own_comm_open_goes_on_the_main_shell_then_its_messages_on_a_subshell(
    frontend: Frontend,
) -> None:
    run = await frontend.run(
        "import comm\n"
        "comm.get_comm_manager().register_target("
        "'t.echo', lambda c, m: c.on_msg(lambda msg: c.send(msg['content']['data'])))"
    )
    assert run.reply["status"] == "ok"
    frontend.profile = "jupyterlab"
    first = frontend.comm_open("t.echo")
    second = frontend.comm_open("t.echo")
    subshell = await frontend.comm_ready(first)
    assert subshell is not None
    assert await frontend.comm_ready(second) == subshell
    sent = [
        (c, m["header"]["msg_type"], m["header"].get("subshell_id"))
        for c, m, _ in frontend.sent.values()
    ][-3:]
    assert sent == [
        ("shell", "comm_open", None),
        ("control", "create_subshell_request", None),
        ("shell", "comm_open", None),
    ]
    echo = frontend.comm_msg(second, {"x": 1})
    assert frontend.sent[echo][1]["header"]["subshell_id"] == subshell
    await frontend.wait_for(
        lambda m: m.msg_type == "comm_msg" and m.content.get("data") == {"x": 1},
        what="the echo",
    )
    frontend.comm_close(first)
    assert not frontend.comms.deleted  # the target's other comm still uses it
    frontend.comm_close(second)
    assert frontend.comms.deleted == [subshell]


def test_a_kernel_without_subshells_gets_no_subshell_requests() -> None:
    sent: list[tuple[str, str]] = []

    def send(channel: str, msg_type: str, content: object = None) -> str:
        sent.append((channel, msg_type))
        return str(len(sent))

    router = CommRouter(JUPYTERLAB, send)
    router.supports_subshells = False
    router.opened("c1", "jupyter.widget")
    assert not router.active
    assert sent == []
    assert router.subshell_of("c1") is None
    router.supports_subshells = True
    router.opened("c2", "jupyter.widget")
    assert sent == [("control", "create_subshell_request")]


def test_profiles_are_found_by_name_and_a_wrong_name_says_which_exist() -> None:
    assert [get_profile(n).name for n in PROFILES] == list(PROFILES)
    assert get_profile(JUPYTERLAB) is JUPYTERLAB
    with pytest.raises(UnknownProfile, match="jupyterlab-per-comm"):
        get_profile("jupyterlab-4")


# -- against the recording of real JupyterLab 4.6 -------------------------------------------------
@pytest.mark.parametrize("profile", list(RECORDINGS))
async def test_the_profile_sends_what_jupyterlab_4_6_sent(profile: str) -> None:
    path = FIXTURES / RECORDINGS[profile]
    if not path.exists():
        pytest.skip(f"no recording at {path.relative_to(FIXTURES.parents[2])}")
    recorded = shape(load(path))
    played, _ = await play_widget_interaction(get_profile(profile))
    if profile == JUPYTERLAB_PER_COMM.name:
        # Whether the control comm's subshell is deleted is a race in JupyterLab itself.
        recorded, played = recorded.without_unused_deletions(), played.without_unused_deletions()
    assert played.differences(recorded) == []


async def test_the_comparison_tells_a_frontend_without_subshells_from_jupyterlab() -> None:
    path = FIXTURES / RECORDINGS[JUPYTERLAB.name]
    if not path.exists():
        pytest.skip(f"no recording at {path.relative_to(FIXTURES.parents[2])}")
    played, _ = await play_widget_interaction(NO_SUBSHELLS)
    found = played.differences(shape(load(path)))
    assert any(d.startswith("created: 0 here, 2 there") for d in found), found
    assert any("('comm_msg', 'update', 'shell', 'subshell')" in d for d in found), found
