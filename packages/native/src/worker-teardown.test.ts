import { execFile } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { expect, inject, it } from "vitest";

const PYTHON = inject("testPython");
const CHILD = join(resolve(dirname(fileURLToPath(import.meta.url))), "worker-teardown.child.mjs");

it("worker threads load the addon and leave, one of them while its interpreter still runs a call", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [CHILD, PYTHON], { timeout: 60_000 });
  expect(JSON.parse(stdout)).toEqual({ two: 2, terminated: 1, exits: [0, 0, 0] });
});
