// End to end: the real `nx g` writes a backend and an adapter package into a scratch
// folder of this workspace; each then builds, passes its own tests (a real pool
// running a call; a real server passing requests to an InferenceService) and
// type-checks. e2e/tests/plugin.test.ts then serves models through a generated adapter
// installed from its tarball.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { afterAll, describe, expect, it } from "vitest";

const HERE = dirname(fileURLToPath(import.meta.url));
const WORKSPACE = resolve(HERE, "../../..");
const SCRATCH = join(HERE, `.e2e-${process.pid}`);
const BIN = join(WORKSPACE, "node_modules", ".bin");
// Plain output, and none of this vitest's variables leaking into the one it starts.
const ENV = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("VITEST") && key !== "FORCE_COLOR")),
  NX_DAEMON: "false",
  NX_NO_CLOUD: "true",
  NX_TUI: "false",
  NO_COLOR: "1",
};

function run(command: string, args: string[], cwd: string): string {
  try {
    return execFileSync(join(BIN, command), args, { cwd, env: ENV, encoding: "utf8", stdio: "pipe" });
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed in ${cwd}:\n${stdout}\n${stderr}`);
  }
}

afterAll(() => rmSync(SCRATCH, { recursive: true, force: true }));

describe.each([
  { kind: "backend", name: "e2e-backend", tests: 2 },
  { kind: "adapter", name: "adapter-e2e", tests: 3 },
])("nx g @coil/generators:$kind", ({ kind, name, tests }) => {
  const directory = `tools/generators/test/${SCRATCH.split("/").pop()}`;
  const root = join(WORKSPACE, directory, name);

  it("generates a package that builds, passes its tests and type-checks", { timeout: 180_000 }, () => {
    const generated = run("nx", ["g", `@coil/generators:${kind}`, name, `--directory=${directory}`, "--skipInstall"], WORKSPACE);
    expect(generated).toContain(`CREATE ${directory}/${name}/package.json`);

    run("tsc", ["-p", "tsconfig.build.json"], root);
    expect(existsSync(join(root, "dist", "index.js"))).toBe(true);
    expect(readdirSync(join(root, "dist")).some((file) => file.endsWith(".d.ts"))).toBe(true);

    const output = run("vitest", ["run", "--reporter=json"], root);
    const report = JSON.parse(output.slice(output.indexOf("{")));
    expect(report).toMatchObject({ numPassedTests: tests, numFailedTests: 0, success: true });

    run("tsc", ["--noEmit", "-p", "."], root);
  });
});
