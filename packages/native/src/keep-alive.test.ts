import { execFile } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { expect, inject, it } from "vitest";

const PYTHON = inject("testPython");
const CHILD = join(resolve(dirname(fileURLToPath(import.meta.url))), "keep-alive.child.mjs");

it("a call in flight keeps the process alive, and an idle interpreter lets it end", async () => {
  // Killed after 60 s: a process that an idle interpreter held open would not end.
  const { stdout } = await promisify(execFile)(process.execPath, [CHILD, PYTHON], { timeout: 60_000 });
  expect(JSON.parse(stdout)).toEqual({ settled: 42 });
});
