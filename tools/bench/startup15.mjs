#!/usr/bin/env node
// Run by scaling.mjs in a child process (a process gets 15 interpreters in its
// lifetime, so the benchmark's own process cannot spend them): starts a pool of
// 15 interpreters that import torch (the CPU backend prepares each), runs a torch
// op in each, and prints one JSON line: started?, seconds, private memory.
// Started without the glibc tunable, it runs itself again with it.
import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";
import { MAX_INTERPRETERS } from "@coil/native";

import { parseFlags } from "./lib/args.mjs";
import { describeError } from "./lib/log.mjs";
import { privateMb } from "./lib/proc.mjs";
import { relaunchWithTunable } from "./lib/tunable.mjs";

await relaunchWithTunable();
const flags = parseFlags(import.meta.url, {
  python: { type: "path", help: "the Python to embed (default: discovered)" },
  size: { type: "integer", default: MAX_INTERPRETERS, max: MAX_INTERPRETERS, help: "interpreters" },
});
const before = privateMb();
const t0 = performance.now();
let pool;
try {
  pool = await InterpreterPool.create({
    size: flags.size,
    backend: new CpuBackend(),
    ...(flags.python !== undefined && { python: flags.python }),
  });
  const seconds = (performance.now() - t0) / 1e3;
  const sums = await Promise.all(pool.interpreters.map((i) => i.eval("__import__('torch').ones(3).sum().item()")));
  const after = privateMb();
  console.log(
    JSON.stringify({
      started: true,
      interpreters: pool.size,
      seconds,
      torch: pool.backendInfo[0].torch,
      allRan: sums.every((s) => s === 3),
      privateMbBefore: before,
      privateMb: after,
      perInterpreterMb: (after - before) / pool.size,
    }),
  );
} catch (error) {
  console.log(JSON.stringify({ started: false, seconds: (performance.now() - t0) / 1e3, error: describeError(error) }));
  process.exitCode = 1;
} finally {
  await pool?.close();
}
