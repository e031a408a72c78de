import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { openArchive } from "@coil/format-reader";
import { generateSigningKeyPair } from "@coil/format-writer";
import { beforeAll, describe, expect, it } from "vitest";

import { inspectArchive } from "./inspect.js";
import { packModel, parseTarget } from "./pack.js";

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, "../test/fixtures");
const NET = join(FIXTURES, "split", "net.py");
const CLI = resolve(here, "../dist/cli.js");
let dir: string;
let keys: { privateKey: string; publicKey: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coil-pack-test-"));
  keys = await generateSigningKeyPair();
});

const python = "/usr/bin/python3";
const spec = { intern: ["helper_*"], python };

describe("packModel", () => {
  it("packs a factory's object with its modules, a manifest and a signature", async () => {
    const output = join(dir, "net.coil");
    const result = await packModel({
      ...spec,
      target: `${NET}:build`,
      output,
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
      signingKey: keys.privateKey,
    });
    expect(result).toMatchObject({ type: "net.Net", signed: true });
    const report = await inspectArchive(output, { publicKey: keys.publicKey });
    expect(report.modules.sort()).toEqual(["helper_a", "helper_b", "net"]);
    expect(report.externs).toContain("torch");
    expect(report.manifest?.entryPoint).toEqual({ package: "coil_entry", resource: "model.pkl" });
    expect(report.manifest?.inputs).toEqual([{ name: "x", dtype: "float32", shape: [-1, 4] }]);
    expect(report.signature).toMatchObject({ signed: true, verified: true, trusted: true });
    expect(report.hashesVerified).toBe(true);
    expect(report.records.every((r) => r.offset % 64 === 0)).toBe(true);
  });

  it("writes the same bytes for the same input", async () => {
    // Same file name (it becomes the archive's folder), different directories.
    const one = join(mkdtempSync(join(dir, "one-")), "net.coil");
    const two = join(mkdtempSync(join(dir, "two-")), "net.coil");
    await packModel({ ...spec, target: `${NET}:build`, output: one, signingKey: keys.privateKey });
    await packModel({ ...spec, target: `${NET}:build`, output: two, signingKey: keys.privateKey });
    expect(readFileSync(one).equals(readFileSync(two))).toBe(true);
  });

  it("writes archives that stock torch.package loads", async () => {
    const output = join(dir, "for-torch.coil");
    await packModel({ ...spec, target: `${NET}:build`, output });
    const loaded = JSON.parse(
      execFileSync(python, [join(FIXTURES, "load_with_torch_package.py"), output, "coil_entry", "model.pkl"]).toString(),
    ) as number[];
    const eager = JSON.parse(
      execFileSync(python, [
        "-c",
        "import sys, json, torch; sys.path.insert(0, sys.argv[1]); import net\n" +
          "with torch.inference_mode(): print(json.dumps(net.build()(torch.ones(1, 4)).flatten().tolist()))",
        dirname(NET),
      ]).toString(),
    ) as number[];
    expect(loaded).toEqual(eager);
  });

  it("lists every module it could not resolve, at once", async () => {
    const error = await packModel({ target: `${NET}:build`, output: join(dir, "x.coil"), python }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "PYTHON_ERROR", pythonType: "coil_package.UnresolvedModulesError" });
    const message = (error as Error).message;
    expect(message).toContain("helper_a");
    expect(message).toContain("helper_b");
    expect(message).toContain("--intern");
  });

  it("applies mock and deny patterns", async () => {
    const mocked = join(dir, "mocked.coil");
    await packModel({ target: `${NET}:build`, output: mocked, intern: ["helper_a"], mock: ["helper_b"], python });
    const archive = await openArchive(mocked);
    // torch.package keeps a mocked module as a stub that fails only when used.
    expect(await archive.readText("helper_b.py")).toContain("_mock");
    expect(archive.has("_mock.py")).toBe(true);
    await archive.close();
    await expect(
      packModel({ target: `${NET}:build`, output: join(dir, "denied.coil"), intern: ["helper_a"], deny: ["helper_b"], python }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/helper_b[\s\S]*denied|denied[\s\S]*helper_b/i) });
  });

  it("reports a bad target clearly", async () => {
    expect(() => parseTarget("model.py")).toThrow(/file.py>:<factory>/);
    await expect(packModel({ ...spec, target: `${NET}:nope`, output: join(dir, "n.coil") })).rejects.toMatchObject({
      pythonType: "AttributeError",
    });
  });
});

describe("the coil command", () => {
  it("packs and inspects from the command line, re-executing itself with the glibc tunable", async () => {
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES; // the CLI must add it itself
    const run = (args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args], { env, cwd: dir });
    const output = join(dir, "cli.coil");
    const packed = await run(["pack", `${NET}:build`, "-o", output, "--intern", "helper_*", "--python", python, "--quiet"]);
    expect(packed.stdout).toContain("packed net.Net");
    const inspected = await run(["inspect", output, "--json"]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ root: "cli", manifest: { entryPoint: { package: "coil_entry" } } });
    const bad = await run(["pack", "nofactory.py", "-o", output]).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("INVALID_ARGUMENT") });
  });
});
