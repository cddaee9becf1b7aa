"""Embed cokernel in a plain Python program and drive it like a Jupyter frontend would.

Run: python examples/embed.py [asyncio|trio]

The kernel runs on a thread of this process through the callback interface (no sockets); the
harness Frontend talks to it through the in-process transport, exactly as it talks to a kernel
process over ZMQ. Note that while the kernel runs, this process's sys.stdout belongs to it, so
this program reports on sys.__stdout__.
"""

from __future__ import annotations

import sys

import anyio

from cokernel.testing import InProcessTransport
from cokernel_harness.frontend import Frontend


def say(*parts: object) -> None:
    print(*parts, file=sys.__stdout__, flush=True)


async def main(backend: str) -> None:
    async with Frontend.connect(
        InProcessTransport(backend=backend), answer_input=lambda prompt, password: "Ada"
    ) as fe:
        info = await fe.kernel_info()
        say("kernel:", info["implementation"], info["implementation_version"], "on", backend)

        run = await fe.run("total = sum(range(10))\ntotal")
        say("sum(range(10)) ->", run.result["text/plain"] if run.result else run.reply)

        run = await fe.run("name = input('Your name? ')\nprint(f'Hello, {name}!')")
        say("stdin round trip ->", run.stdout.strip())

        # A cell awaits a value that a later comm message delivers: no deadlock.
        cell = fe.execute(
            "import anyio, comm\n"
            "got = anyio.Event(); box = comm.create_comm(target_name='embed')\n"
            "seen = []\n"
            "box.on_msg(lambda msg: (seen.append(msg['content']['data']['value']), got.set()))\n"
            "await got.wait()\n"
            "print('cell received', seen[0])"
        )
        opened = await fe.wait_for(
            lambda m: m.msg_type == "comm_open" and m.parent_id == cell, what="comm_open"
        )
        fe.comm_msg(opened.content["comm_id"], {"value": 42})
        run = await fe.collect(cell)
        say("widget-style await ->", run.stdout.strip())


if __name__ == "__main__":
    chosen = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
    anyio.run(main, chosen, backend=chosen)
