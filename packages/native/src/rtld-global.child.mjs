// Run by namespace-root.test.ts in a process of its own: a process whose namespace
// crashes must not be the test runner. Starts one interpreter of the Python in
// argv[2], with the namespace root (argv[3] "root") or without it ("none"), runs the
// Python source in argv[4], and prints one JSON line: the value of `result`.
import { bridgePath, discoverPython, loadAddon, namespaceRootPath } from "@coil/native";

const [, , python, mode, source] = process.argv;
const found = await discoverPython({ python });
const addon = loadAddon();
let jobId = 1;
const { interpreter, ready } = addon.startInterpreter({
  library: found.library,
  executable: found.executable,
  sysPath: found.sysPath,
  bridgePath: bridgePath(),
  ...(mode === "root" && { namespaceRoot: namespaceRootPath() }),
  jobId: jobId++,
});
await ready;
await interpreter.call("exec_source", [source], jobId++);
console.log(JSON.stringify(await interpreter.call("eval_expr", ["result"], jobId++)));
process.exit(0);
