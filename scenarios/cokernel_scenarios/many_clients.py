"""Three clients attached to one kernel: every client sees all iopub, each only its replies.

How a notebook and a console share a kernel (``jupyter console --existing``): the second and
third clients attach through the connection file, and all three execute at once.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from cokernel_harness.frontend import Frontend
from cokernel_harness.transport import ZMQTransport
from cokernel_scenarios.scenario import PATIENCE, PYTHON, Scenario, expect, expect_ok

CLIENTS = 3


class ManyClients(Scenario):
    name = "many_clients"
    description = f"{CLIENTS} frontends on one kernel: all get iopub, each gets its own replies"
    requires = PYTHON | {"connection_file"}

    async def run(self, fe: Frontend) -> None:
        path = fe.transport.connection_file_path()
        assert path is not None
        async with AsyncExitStack() as stack:
            clients = [fe]
            for _ in range(CLIENTS - 1):
                transport = ZMQTransport(connection_file=path)
                clients.append(await stack.enter_async_context(Frontend.connect(transport)))
            cells = [c.execute(f"print('from client {i}')") for i, c in enumerate(clients)]
            for i, (client, cell) in enumerate(zip(clients, cells, strict=True)):
                own = await client.collect(cell, timeout=PATIENCE + 20)
                expect_ok(own, f"client {i}'s cell", client)
            for i, client in enumerate(clients):
                for j, cell in enumerate(cells):
                    await self._check(client, i, cell, j)

    @staticmethod
    async def _check(client: Frontend, i: int, cell: str, j: int) -> None:
        await client.wait_for(
            lambda m: (
                m.channel == "iopub"
                and m.parent_id == cell
                and m.msg_type == "status"
                and m.content.get("execution_state") == "idle"
            ),
            timeout=PATIENCE,
            what=f"client {i} to see the idle of client {j}'s cell",
        )
        text = "".join(
            m.content.get("text", "")
            for m in client.log
            if m.channel == "iopub" and m.parent_id == cell and m.msg_type == "stream"
        )
        expect(
            f"from client {j}" in text,
            f"client {i} to see client {j}'s output on iopub",
            f"stream text {text!r}",
            client,
        )
        replies = [m for m in client.log if m.channel == "shell" and m.parent_id == cell]
        wanted = 1 if i == j else 0
        expect(
            len(replies) == wanted,
            f"client {i} to get {wanted} shell replies to client {j}'s cell",
            f"{len(replies)}",
            client,
        )
