// The global setup's work, checked: tools, build, tarballs, the install from them.
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { e2eContext } from "../harness/context.js";
import { missingTools } from "../harness/tools.js";
import { runOk } from "../harness/process.js";

const context = e2eContext();

function step(name: string) {
  const found = context.steps.find((s) => s.name === name || s.name.startsWith(name));
  if (!found) throw new Error(`the setup never reached "${name}" (an earlier step failed: ${JSON.stringify(context.steps.at(-1))})`);
  return found;
}

function expectStep(name: string): void {
  const { ok, detail } = step(name);
  expect(ok, detail).toBe(true);
}

describe("the setup", () => {
  it("has wrk, curl, python3-grpcio, python3-grpc-tools (installs them with apt if missing)", async () => {
    expectStep("tools");
    expect(await missingTools()).toEqual([]);
  });

  it("finds torch importable by /usr/bin/python3", () => {
    expectStep("torch importable");
  });

  it("builds the workspace", () => {
    expectStep("workspace build");
  });
});

describe("npm pack", () => {
  it("packs every publishable package", () => {
    expectStep("npm pack");
    expect(context.packages.length).toBeGreaterThan(0);
    expect(context.tarballs).toHaveLength(context.packages.length);
    for (const tarball of context.tarballs) expect(existsSync(tarball), tarball).toBe(true);
  });

  it("puts the C++ sources in @coil/native's tarball", async () => {
    const native = context.tarballs.find((file) => /\/coil-native-[^/]*\.tgz$/.test(file));
    expect(native).toBeDefined();
    expect((await runOk("tar", ["-tzf", native!])).split("\n")).toContain("package/native/CMakeLists.txt");
  });
});

describe("npm install of the tarballs into a scratch project", () => {
  it("installs with --strict-allow-scripts: allowScripts covers every install script", () => {
    expectStep("npm install of the tarballs");
    expect(readFileSync(join(context.work, "install.log"), "utf8")).not.toContain("not yet covered by allowScripts");
  });

  it("builds @coil/native's addon from the tarball by its install script", () => {
    const native = join(context.project, "node_modules/@coil/native");
    expect(existsSync(join(native, "build/Release/coil_native.node"))).toBe(true);
    expect(existsSync(join(native, "build/CMakeCache.txt"))).toBe(true);
  });

  it("links node_modules/.bin/coil", () => {
    expect(statSync(context.coil).mode & 0o111).not.toBe(0);
  });

  it("resolves @coil/runtime inside the scratch project, not in the workspace", () => {
    const resolved = createRequire(join(context.project, "package.json")).resolve("@coil/runtime/package.json");
    expect(resolved.startsWith(`${context.project}/`)).toBe(true);
  });

  it("computes the eager PyTorch reference", () => {
    expectStep("eager reference");
  });
});
