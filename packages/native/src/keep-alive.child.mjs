// Run by keep-alive.test.ts in a process of its own (docs/engine.md, fact 7): starts
// an interpreter of the Python in argv[2], then leaves one call in flight and nothing
// else to keep the event loop alive. Prints the call's result when it settles -- only
// if the in-flight call held the process open -- and the process then ends by itself
// (an idle interpreter must not hold it open).
import { bridgePath, discoverPython, loadAddon, namespaceRootPath } from "@coil/native";

const [, , python] = process.argv;
const found = await discoverPython({ python });
const { interpreter, ready } = loadAddon().startInterpreter({
  library: found.library,
  executable: found.executable,
  sysPath: found.sysPath,
  bridgePath: bridgePath(),
  namespaceRoot: namespaceRootPath(),
  jobId: 1,
});
await ready;
interpreter.call("eval_expr", ["__import__('time').sleep(0.5) or 42"], 2).then((value) => console.log(JSON.stringify({ settled: value })));
