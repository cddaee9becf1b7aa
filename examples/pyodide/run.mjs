// Run cokernel inside Pyodide under Node: callback.serve() on Pyodide's asyncio loop (WebLoop),
// driven from JavaScript like a JupyterLite-style host would drive it. Not part of the test suite.
//
// Usage (from a scratch directory outside the repository):
//   npm install pyodide
//   pip download --only-binary=:all: --platform any --python-version 3.14 --implementation py \
//       -d wheels anyio sniffio aiologic ipython comm traitlets
//   node /path/to/cokernel/examples/pyodide/run.mjs [--wheels wheels] [--src /path/to/kernel/cokernel]
//
// The wheels are pure-Python; they are unpacked into Pyodide's site-packages (micropip is not
// in the npm package and would need a network). The kernel sources are copied into Pyodide's
// file system. Exits non-zero if a check fails.

import { readdirSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const wheelsDir = resolve(option("--wheels", "wheels"));
const srcDir = resolve(option("--src", join(here, "..", "..", "kernel", "cokernel")));

// pyodide is resolved from the current directory, so node_modules stays out of the repository.
const { loadPyodide } = createRequire(join(process.cwd(), "/"))("pyodide");
const t0 = Date.now();
const py = await loadPyodide();
console.log(`pyodide ${py.version} loaded in ${Date.now() - t0} ms`);

// -- dependencies and kernel sources ------------------------------------------------------------
const wheels = readdirSync(wheelsDir).filter((f) => f.endsWith(".whl"));
if (wheels.length === 0) throw new Error(`no wheels in ${wheelsDir}: see the usage comment`);
py.FS.mkdirTree("/tmp/wheels");
for (const f of wheels) py.FS.writeFile(`/tmp/wheels/${f}`, readFileSync(join(wheelsDir, f)));
py.runPython(`
import glob, sysconfig, zipfile
for wheel in sorted(glob.glob("/tmp/wheels/*.whl")):
    zipfile.ZipFile(wheel).extractall(sysconfig.get_paths()["purelib"])
`);
function copyTree(src, dst) {
  py.FS.mkdirTree(dst);
  for (const name of readdirSync(src)) {
    if (name === "__pycache__") continue;
    const from = join(src, name);
    if (statSync(from).isDirectory()) copyTree(from, `${dst}/${name}`);
    else py.FS.writeFile(`${dst}/${name}`, readFileSync(from));
  }
}
copyTree(srcDir, "/home/pyodide/cokernel"); // the working directory, so on sys.path
console.log(`${wheels.length} wheels unpacked; cokernel copied from ${srcDir}`);

// -- the host side: send callback, messages, waiting --------------------------------------------
const outbox = [];
function send(channel, msg) {
  // msg is a Python dict, borrowed for this call only: convert it now.
  const js = msg.toJs({ dict_converter: Object.fromEntries });
  js.msg_type = js.header.msg_type;
  outbox.push({ channel, msg: js });
}
let seq = 0;
function message(msgType, content) {
  return {
    header: { msg_id: `js-${++seq}`, msg_type: msgType, session: "js-host", username: "js", version: "5.4", date: new Date().toISOString() },
    parent_header: {},
    metadata: {},
    content,
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let handle;
const ready = new Promise((resolve) => {
  py.globals.set("js_ready", (h) => resolve(h.copy())); // copy: keep the proxy past the call
});
py.globals.set("js_send", send);
const served = py.runPythonAsync(`
from cokernel.interfaces import callback
await callback.serve(js_send, ready=js_ready)
"serve returned"
`);
served.catch(() => {});
handle = await Promise.race([ready, served.then((r) => { throw new Error(`serve ended early: ${r}`); })]);

// Send one request; wait for its reply and its idle status; return everything it caused.
async function request(channel, msgType, content, timeoutMs = 10000) {
  const msg = message(msgType, content);
  const start = outbox.length;
  handle.receive(channel, py.toPy(msg));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const mine = outbox.slice(start).filter((m) => m.msg.parent_header?.msg_id === msg.header.msg_id);
    const reply = mine.find((m) => m.channel === channel);
    const idle = mine.find((m) => m.msg.msg_type === "status" && m.msg.content.execution_state === "idle");
    if (reply && idle) return { reply: reply.msg.content, iopub: mine.filter((m) => m.channel === "iopub").map((m) => m.msg) };
    if (Date.now() > deadline) throw new Error(`no reply to ${msgType} within ${timeoutMs} ms`);
    await sleep(5); // lets Pyodide's loop (setTimeout-driven) run
  }
}
const execute = (code, extra = {}) => request("shell", "execute_request", { code, silent: false, store_history: true, allow_stdin: true, ...extra });
const streamText = (r) => r.iopub.filter((m) => m.msg_type === "stream").map((m) => m.content.text).join("");
const result = (r) => r.iopub.find((m) => m.msg_type === "execute_result")?.content.data["text/plain"];

// -- checks -------------------------------------------------------------------------------------
let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    const detail = await fn();
    passed++;
    console.log(`ok    ${name}${detail === undefined ? "" : `: ${detail}`}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}: ${String(e?.message ?? e).split("\n").slice(-3).join(" | ")}`);
  }
}
function expect(cond, what) {
  if (!cond) throw new Error(what);
}

await check("kernel_info_request", async () => {
  const { reply } = await request("shell", "kernel_info_request", {});
  expect(reply.status === "ok" && reply.implementation === "cokernel", JSON.stringify(reply));
  expect(!reply.supported_features.includes("kernel subshells"), "advertises subshells without threads");
  return reply.banner.split("\n")[0];
});
await check("execute 1+1", async () => {
  const r = await execute("1+1");
  expect(r.reply.status === "ok" && result(r) === "2", JSON.stringify(r));
  return `execute_result ${result(r)}`;
});
await check("print goes out as a stream", async () => {
  const r = await execute("import sys, threading\nprint('hello from', sys.platform)");
  expect(streamText(r) === "hello from emscripten\n", JSON.stringify(r.iopub));
  return JSON.stringify(streamText(r));
});
await check("top-level await on the WebLoop", async () => {
  const r = await execute("import asyncio\nawait asyncio.sleep(0.05)\ntype(asyncio.get_running_loop()).__name__");
  expect(result(r) === "'WebLoop'", JSON.stringify(r));
  return result(r);
});
await check("an error", async () => {
  const r = await execute("1/0");
  expect(r.reply.status === "error" && r.reply.ename === "ZeroDivisionError", JSON.stringify(r.reply));
  expect(r.iopub.some((m) => m.msg_type === "error"), "no error message on iopub");
});
await check("complete_request (a thread-mode handler, run as a task)", async () => {
  const { reply } = await request("shell", "complete_request", { code: "import asy", cursor_pos: 10 });
  expect(reply.status === "ok" && reply.matches.includes("asyncio"), JSON.stringify(reply));
  return reply.matches.join(", ");
});
await check("inspect_request", async () => {
  const { reply } = await request("shell", "inspect_request", { code: "print", cursor_pos: 5, detail_level: 0 });
  expect(reply.status === "ok" && reply.found, JSON.stringify(reply));
});
await check("is_complete_request", async () => {
  const { reply } = await request("shell", "is_complete_request", { code: "for i in x:" });
  expect(reply.status === "incomplete", JSON.stringify(reply));
});
await check("history (IPython's sqlite history)", async () => {
  const { reply } = await request("shell", "history_request", { hist_access_type: "tail", n: 10, raw: true, output: false });
  expect(reply.status === "ok" && reply.history.some((h) => h[2] === "1+1"), JSON.stringify(reply));
  const r = await execute("hm = get_ipython().history_manager\nimport sqlite3\nf'sqlite {sqlite3.sqlite_version}, file {hm.hist_file}, {hm.save_thread!r}'");
  return `${reply.history.length} entries; ${result(r)}`;
});
await check("output of a background task reaches its cell (stream flush task)", async () => {
  const r = await execute("import asyncio\nasync def later():\n    await asyncio.sleep(0.2)\n    print('later')\n_t = asyncio.ensure_future(later())");
  const id = r.iopub[0].parent_header.msg_id;
  await sleep(600);
  const late = outbox.filter((m) => m.msg.msg_type === "stream" && m.msg.parent_header.msg_id === id);
  expect(late.length === 1 && late[0].msg.content.text === "later\n", JSON.stringify(late));
});
await check("interrupt_request on control stops an awaiting cell", async () => {
  const cell = execute("import asyncio\nawait asyncio.sleep(30)");
  await sleep(200);
  const { reply } = await request("control", "interrupt_request", {});
  const r = await cell;
  expect(reply.status === "ok" && r.reply.ename === "KeyboardInterrupt", JSON.stringify(r.reply));
  return `cell ended with ${r.reply.ename}`;
});
await check("complete_request answered while a cell awaits", async () => {
  const cell = execute("import asyncio\nawait asyncio.sleep(1)\n'slept'");
  await sleep(100);
  const { reply } = await request("shell", "complete_request", { code: "impor", cursor_pos: 5 });
  const cellDone = outbox.some((m) => m.msg.msg_type === "execute_reply" && m.msg.content.status === "ok" && m.msg.parent_header.msg_id === `js-${seq - 1}`);
  const r = await cell;
  expect(reply.matches.includes("import") && result(r) === "'slept'", JSON.stringify(reply));
  expect(!cellDone, "the completion reply came after the cell's reply");
  return "the completion reply came before the cell's reply";
});
await check("execution timeout of an awaiting cell", async () => {
  const r = await execute("# cokernel: timeout=0.2\nimport asyncio\nawait asyncio.sleep(30)");
  expect(r.reply.ename === "ExecutionTimeout", JSON.stringify(r.reply));
  return r.reply.evalue;
});
await check("'# cokernel: thread' cell runs as a task", async () => {
  const r = await execute("# cokernel: thread\n6*7");
  expect(result(r) === "42", JSON.stringify(r));
});
await check("input() is refused, not hung", async () => {
  const r = await execute("input('name? ')");
  expect(r.reply.ename === "StdinNotImplementedError", JSON.stringify(r.reply));
  return r.reply.evalue;
});
await check("create_subshell_request is refused", async () => {
  const { reply } = await request("control", "create_subshell_request", {});
  expect(reply.status === "error", JSON.stringify(reply));
  return `${reply.ename}: ${reply.evalue}`;
});
await check("a cell cannot start a thread (Pyodide)", async () => {
  const r = await execute("import threading\nthreading.Thread(target=print).start()");
  expect(r.reply.ename === "RuntimeError", JSON.stringify(r.reply));
  return `${r.reply.ename}: ${r.reply.evalue}`;
});
await check("asyncio.run() in a cell fails (cokernel runs it on a worker thread)", async () => {
  const r = await execute("import asyncio\nasync def main():\n    return 1\nasyncio.run(main())");
  expect(r.reply.status === "error", JSON.stringify(r.reply));
  return `${r.reply.ename}: ${r.reply.evalue}`;
});
await check("usage_request answers with an error (no psutil in Pyodide)", async () => {
  const { reply } = await request("control", "usage_request", {});
  expect(reply.status === "error", JSON.stringify(reply));
  return `${reply.ename}: ${reply.evalue}`;
});
await check("shutdown_request on control ends serve()", async () => {
  const { reply } = await request("control", "shutdown_request", { restart: false });
  expect(reply.status === "ok", JSON.stringify(reply));
  return await Promise.race([served, sleep(5000).then(() => { throw new Error("serve() did not return"); })]);
});
handle.destroy();

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
