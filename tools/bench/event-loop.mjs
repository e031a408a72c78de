#!/usr/bin/env node
// Does Node's event loop stay responsive while interpreters flood it with
// completions? A 10 ms interval runs during 2 s of no-op calls (256 outstanding, 2
// interpreters); it should fire about 200 times. Coil's deadlines are timers too.
import { acquireInterpreters, discoverPython, releaseInterpreters } from "@coil/native";

import { parseFlags } from "./lib/args.mjs";
import { closedLoop } from "./lib/closed-loop.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();
const flags = parseFlags(import.meta.url, {
  seconds: { type: "number", positive: true, default: 2, help: "seconds of load" },
  interval: { type: "number", positive: true, default: 10, help: "the timer's interval, ms" },
  concurrency: { type: "integer", default: 256, help: "outstanding no-op calls" },
  interpreters: { type: "integer", default: 2, help: "interpreters the calls go to, in turn" },
  python: { type: "path", default: "/usr/bin/python3", help: "the Python to embed" },
});
const interps = await acquireInterpreters(flags.interpreters, await discoverPython({ python: flags.python }));
let fired = 0;
let worst = 0;
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  worst = Math.max(worst, now - last);
  last = now;
  fired++;
}, flags.interval);
const load = await closedLoop((caller) => interps[caller % interps.length].call("noop", []), {
  concurrency: flags.concurrency,
  durationMs: flags.seconds * 1e3,
});
clearInterval(timer);
const expected = Math.round((flags.seconds * 1e3) / flags.interval);
console.log(
  `${flags.interval} ms interval during ${flags.seconds} s of load: fired ${fired} times (~${expected} expected), ` +
    `worst gap ${worst.toFixed(0)} ms; ${Math.round(load.callsPerSecond)} calls/s`,
);
await releaseInterpreters(interps);
