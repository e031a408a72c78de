// Run by scaling.mjs in a child process (a process gets 15 interpreters in its
// lifetime, so the benchmark's own process cannot spend them): starts a pool of
// 15 interpreters that import torch (the CPU backend prepares each), runs a torch
// op in each, and prints one JSON line: started?, seconds, private memory.
// Needs GLIBC_TUNABLES=glibc.rtld.nns=16 in its environment at start.
import { parseArgs } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool } from "@coil/core";

import { privateMb } from "./proc.mjs";

const { values } = parseArgs({
  options: { python: { type: "string" }, size: { type: "string", default: "15" } },
  strict: true,
});
const size = Number(values.size);
const before = privateMb();
const t0 = performance.now();
let pool;
try {
  pool = await InterpreterPool.create({
    size,
    backend: new CpuBackend(),
    ...(values.python !== undefined && { python: values.python }),
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
  console.log(JSON.stringify({ started: false, seconds: (performance.now() - t0) / 1e3, error: `${error.code ?? ""} ${error.message}`.trim() }));
  process.exitCode = 1;
} finally {
  await pool?.close();
}
