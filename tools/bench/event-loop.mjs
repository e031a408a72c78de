#!/usr/bin/env node
// Does Node's event loop stay responsive while interpreters flood it with
// completions? A 10 ms interval runs during 2 s of no-op calls (256 outstanding, 2
// interpreters); it should fire about 200 times. Coil's deadlines are timers too.
//   GLIBC_TUNABLES=glibc.rtld.nns=16 node tools/bench/event-loop.mjs
import { acquireInterpreters, discoverPython, releaseInterpreters } from "@coil/native";
const python = await discoverPython({ python: "/usr/bin/python3" });
const interps = await acquireInterpreters(2, python);
let fired = 0, last = performance.now(), worst = 0;
const timer = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; fired++; }, 10);
let stop = false, calls = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: 256 }, async (_, k) => { while (!stop) { await interps[k % 2].call("noop", []); calls++; if (performance.now() - t0 > 2000) stop = true; } }));
clearInterval(timer);
console.log(`10 ms interval during 2 s of load: fired ${fired} times (~200 expected), worst gap ${worst.toFixed(0)} ms; ${Math.round(calls / 2)} calls/s`);
await releaseInterpreters(interps);
