// Run by scope-flag.test.ts in a process of its own: a process that deadlocks must
// not be the test runner. Starts two interpreters of the Python in argv[2] and runs
// the steps in argv[3], a JSON list of { on: 0 | 1, exec?: source, eval?: expression,
// background?: true } or { pause: ms }, one after another (a background step is not
// waited for: it runs beside the next ones); prints one JSON line: what each `eval`
// returned (the background ones last), and how many leaked scope flags the engine
// cleared.
import { bridgePath, discoverPython, loadAddon, namespaceRootPath } from "@coil/native";

const [, , python, steps] = process.argv;
const found = await discoverPython({ python });
const addon = loadAddon();
let jobId = 1;
const start = () =>
  addon.startInterpreter({
    library: found.library,
    executable: found.executable,
    sysPath: found.sysPath,
    bridgePath: bridgePath(),
    namespaceRoot: namespaceRootPath(),
    jobId: jobId++,
  });
const interpreters = [start(), start()];
await Promise.all(interpreters.map((i) => i.ready));
const values = [];
const background = [];
for (const step of JSON.parse(steps)) {
  if (step.pause !== undefined) {
    await new Promise((resolve) => setTimeout(resolve, step.pause));
    continue;
  }
  const { interpreter } = interpreters[step.on];
  const run = async () => {
    if (step.exec !== undefined) await interpreter.call("exec_source", [step.exec], jobId++);
    return step.eval !== undefined ? [await interpreter.call("eval_expr", [step.eval], jobId++)] : [];
  };
  if (step.background) background.push(run());
  else values.push(...(await run()));
}
for (const value of await Promise.all(background)) values.push(...value);
console.log(JSON.stringify({ values, scopeFlagsCleared: addon.scopeFlagsCleared() }));
process.exit(0);
