// Run by cpython-versions.test.ts in a process of its own, one per CPython (a process
// gets 15 interpreters in its lifetime: docs/engine.md, fact 8). Starts 2 interpreters
// of the Python in argv[2] through the built package and prints one JSON line of what
// they did; the test asserts on it. Needs no torch.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { acquireInterpreters, discoverPython, releaseInterpreters } from "@coil/native";

/** JSON for what JSON lacks: bigints and bytes, tagged so they compare exactly. */
const tagged = (value) =>
  JSON.stringify(value, (_key, v) => {
    if (typeof v === "bigint") return { bigint: v.toString() };
    if (v && v.type === "Buffer" && Array.isArray(v.data)) return { bytes: v.data };
    return v;
  });

const settle = (promise) =>
  promise.then(
    (value) => ({ value }),
    (e) => ({ code: e.code, message: e.message, pythonType: e.pythonType, pythonTraceback: e.pythonTraceback }),
  );

const value = {
  none: null,
  yes: true,
  int: -42,
  float: 2.5,
  text: "grüße 🐍",
  list: [1, [2, [3]], { deep: "x" }],
  bytes: Buffer.from([0, 1, 254, 255]),
  big: 2n ** 62n,
  huge: 2n ** 64n - 1n,
  lowest: -(2n ** 63n),
};

const python = await discoverPython({ python: process.argv[2] });
const [a, b] = await acquireInterpreters(2, python);
await Promise.all([a, b].map((i) => i.exec("import os, sys, threading, time")));

const report = {
  probedVersion: python.version,
  library: python.library,
  engineVersions: [a.pythonVersion, b.pythonVersion],
  sysVersions: await Promise.all([a, b].map((i) => i.eval("'.'.join(map(str, sys.version_info[:3]))"))),
};

report.sent = tagged(value);
report.echo = tagged(await a.call("echo", [value]));
report.tuple = await a.eval("(1, 'two', (3.5, None), {'z': 1, 'a': 2})");

await a.exec("def fail(n):\n    raise ValueError(f'bad value {n}')\n", "failing.py");
report.error = await settle(a.eval("fail(3)"));

report.deadline = await settle(a.call("exec_source", ["while True:\n    pass\n", "spin.py"], { timeoutMs: 300 }));
report.afterDeadline = await settle(a.eval("6 * 7"));

// Both interpreters must be inside Python at once: each marks its arrival, then
// waits for the other's mark. Run one after the other, the first would give up.
const dir = mkdtempSync(join(tmpdir(), "coil-rendezvous-"));
const rendezvous = (mine, theirs) =>
  `open(${JSON.stringify(join(dir, mine))}, "w").close()\n` +
  `deadline = time.monotonic() + 60\n` +
  `while not os.path.exists(${JSON.stringify(join(dir, theirs))}) and time.monotonic() < deadline:\n    time.sleep(0.001)\n` +
  `met = os.path.exists(${JSON.stringify(join(dir, theirs))})\n` +
  `thread = threading.get_ident()\n`;
await Promise.all([a.exec(rendezvous("a", "b")), b.exec(rendezvous("b", "a"))]);
report.parallel = await Promise.all([a, b].map((i) => i.eval("(met, thread)")));
// Isolation: a global set in one interpreter does not exist in the other.
await a.exec("only_in_a = 1");
report.isolated = await b.eval("'only_in_a' in globals()");

await releaseInterpreters([a, b]);
console.log(JSON.stringify(report));
process.exit(0);
