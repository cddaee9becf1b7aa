"""Simulated widgets: the page's side of the ipywidgets protocol, against real ipywidgets.

The kernel runs ipywidgets 8; these tests use the ``frontend`` fixture of the harness's pytest
plugin (a Frontend on a fresh kernel, by default cokernel).
"""

from __future__ import annotations

import pytest

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Execution
from cokernel_harness.widgets import PROTOCOL_VERSION, Widgets, put_buffers, remove_buffers

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def ok(fe: Frontend, code: str) -> Execution:
    run = await fe.run(code, timeout=30)
    assert run.reply["status"] == "ok", f"{run.reply.get('ename')}: {run.reply.get('evalue')}"
    return run


SLIDER = "import ipywidgets as w\ns = w.IntSlider(value=3, min=0, max=10, description='s')\n"


# -- pure helpers --------------------------------------------------------------------------------
def test_binary_values_split_out_to_buffers_and_back() -> None:
    state = {"a": 1, "img": b"\x00\x01", "nested": {"list": [b"x", 2]}}
    plain, paths, buffers = remove_buffers(state)
    assert plain == {"a": 1, "img": None, "nested": {"list": [None, 2]}}
    assert paths == [["img"], ["nested", "list", 0]]
    assert buffers == [b"\x00\x01", b"x"]
    put_buffers(plain, paths, [memoryview(b) for b in buffers])
    assert plain == state


# -- against a kernel ----------------------------------------------------------------------------
async def test_a_widget_the_kernel_creates_is_mirrored_with_its_state(frontend: Frontend) -> None:
    await ok(frontend, SLIDER)
    (slider,) = Widgets(frontend).find("IntSliderModel")
    assert slider.version == PROTOCOL_VERSION
    assert (slider.value, slider.state["max"], slider.state["description"]) == (3, 10, "s")
    assert slider.state["layout"].startswith("IPY_MODEL_")  # references to other models


async def test_setting_state_from_the_page_reaches_the_kernel_and_is_echoed(
    frontend: Frontend,
) -> None:
    await ok(frontend, SLIDER)
    widgets = Widgets(frontend)
    (slider,) = widgets.find("IntSliderModel")
    widgets.set_state(slider.comm_id, {"value": 7})
    assert slider.pending_echo == {"value": 1}
    await widgets.wait_for_echo(slider.comm_id, timeout=20)
    assert (slider.echoes, slider.value) == (1, 7)
    assert (await ok(frontend, "s.value")).result == {"text/plain": "7"}


async def test_a_change_in_the_kernel_updates_the_mirror(frontend: Frontend) -> None:
    await ok(frontend, SLIDER)
    widgets = Widgets(frontend)
    (slider,) = widgets.find("IntSliderModel")
    await ok(frontend, "s.value = 9")
    await widgets.wait_for_state(slider.comm_id, lambda state: state["value"] == 9, timeout=20)
    assert slider.updates >= 1


async def test_request_state_is_answered_with_the_whole_state(frontend: Frontend) -> None:
    await ok(frontend, SLIDER)
    widgets = Widgets(frontend)
    (slider,) = widgets.find("IntSliderModel")
    slider.state["value"] = -1  # as if this page had lost track of it
    request = widgets.request_state(slider.comm_id)
    answer = await frontend.wait_for(
        lambda m: m.parent_id == request and m.msg_type == "comm_msg",
        timeout=20,
        what="the update answering request_state",
    )
    assert answer.content["data"]["method"] == "update"
    assert widgets.get(slider.comm_id).value == 3


async def test_custom_messages_travel_both_ways_with_buffers(frontend: Frontend) -> None:
    await ok(
        frontend,
        SLIDER + "s.on_msg(lambda widget, content, buffers: "
        "widget.send({'got': content['ping'], 'sizes': [len(b) for b in buffers]}))\n",
    )
    widgets = Widgets(frontend)
    (slider,) = widgets.find("IntSliderModel")
    widgets.send_custom(slider.comm_id, {"ping": 5}, buffers=[b"abc", b"de"])
    await widgets.wait_for_state(
        slider.comm_id, lambda state: bool(slider.custom), what="the custom answer", timeout=20
    )
    assert slider.custom == [{"got": 5, "sizes": [3, 2]}]


async def test_binary_state_arrives_and_leaves_as_buffers(frontend: Frontend) -> None:
    await ok(frontend, "import ipywidgets as w\nimg = w.Image(value=b'\\x89PNG-1', format='png')")
    widgets = Widgets(frontend)
    (image,) = widgets.find("ImageModel")
    assert image.value == b"\x89PNG-1"
    widgets.set_state(image.comm_id, {"value": b"\x89PNG-2"})
    await widgets.wait_for_echo(image.comm_id, timeout=20)
    # Image.value is a memoryview in ipywidgets 8
    assert (await ok(frontend, "img.value.tobytes()")).result == {"text/plain": "b'\\x89PNG-2'"}


async def test_closing_in_the_kernel_closes_the_mirror(frontend: Frontend) -> None:
    await ok(frontend, SLIDER)
    widgets = Widgets(frontend)
    (slider,) = widgets.find("IntSliderModel")
    await ok(frontend, "s.close()")
    assert widgets.get(slider.comm_id).closed
    assert widgets.find("IntSliderModel") == []


async def test_a_widget_opened_later_is_found_by_waiting(frontend: Frontend) -> None:
    widgets = Widgets(frontend)
    start = len(frontend.log)
    frontend.execute("import ipywidgets as w\nt = w.Text(value='later')")
    model = await widgets.wait_for_model(
        lambda m: m.model_name == "TextModel", start=start, timeout=20
    )
    assert model.value == "later"
