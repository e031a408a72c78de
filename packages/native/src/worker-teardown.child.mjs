// Run by worker-teardown.test.ts in a process of its own: a worker that starts an
// interpreter keeps its namespace for good, and one that went wrong would abort the
// process. In a worker thread: start an interpreter of the Python in argv[2], call it
// back to back, and stop the worker meanwhile (terminate()) -- while it settles
// results, polls for them, and has a call in flight; then three workers that load the
// addon and end on their own. Each worker's environment closes the addon's wake-up
// handle before its event loop goes. Prints one JSON line.
import { Worker } from "node:worker_threads";

const [, , python] = process.argv;
const native = import.meta.resolve("@coil/native");

const CALLER = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.native).then(async ({ bridgePath, discoverPython, loadAddon, namespaceRootPath }) => {
  const found = await discoverPython({ python: workerData.python });
  const { interpreter, ready } = loadAddon().startInterpreter({
    library: found.library, executable: found.executable, sysPath: found.sysPath,
    bridgePath: bridgePath(), namespaceRoot: namespaceRootPath(), jobId: 1,
  });
  await ready;
  const two = await interpreter.call("eval_expr", ["1 + 1"], 2);
  // Calls back to back until the worker goes: it is stopped while it settles results
  // and polls for the next, and with a call in flight.
  let id = 3;
  (async () => {
    for (;;) await interpreter.call("eval_expr", ["sum(range(1000))"], id++);
  })();
  setTimeout(() => parentPort.postMessage(two), 50);
});
`;
const LOADER = `
const { workerData } = require("node:worker_threads");
import(workerData.native).then(({ loadAddon }) => { loadAddon(); });
`;

const exited = (worker) =>
  new Promise((resolve, reject) => {
    worker.once("error", reject);
    worker.once("exit", resolve);
  });

const caller = new Worker(CALLER, { eval: true, workerData: { python, native } });
const two = await new Promise((resolve, reject) => {
  caller.once("message", resolve);
  caller.once("error", reject);
});
const terminated = await caller.terminate();
// The call in flight ends into the environment that is gone: dropped, nothing to wake.
await new Promise((resolve) => setTimeout(resolve, 1000));
const exits = [];
for (let i = 0; i < 3; i++) exits.push(await exited(new Worker(LOADER, { eval: true, workerData: { native } })));
console.log(JSON.stringify({ two, terminated, exits }));
