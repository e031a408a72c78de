import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { openArchive, type TensorSpec } from "@coil/format-reader";
import { generateSigningKeyPair } from "@coil/format-writer";
import { inspectPython } from "@coil/native";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { compareWithEager } from "../test/fixtures/zero-config/equivalence.js";
import { inspectArchive } from "./inspect.js";
import { formatDecisions, packModel, parseTarget, type PackResult } from "./pack.js";

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = resolve(here, "../test/fixtures");
const NET = join(FIXTURES, "split", "net.py");
const ZERO = join(FIXTURES, "zero-config");
const CLI = resolve(here, "../dist/cli.js");
let dir: string;
let keys: { privateKey: string; publicKey: string };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coil-pack-test-"));
  keys = await generateSigningKeyPair();
});

const python = inject("testPython");
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
    expect(result).toMatchObject({ type: "net.Net", signed: true, signature: { inputs: "given", outputs: "given" }, warnings: [] });
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

  it("lets explicit patterns override the automatic ones, and lists every module it cannot pack, at once", async () => {
    // The sibling modules would be interned; --extern keeps helper_a out of the archive.
    const output = join(dir, "explicit.coil");
    const result = await packModel({ target: `${NET}:build`, output, extern: ["helper_a"], python });
    expect(result.decisions).toContainEqual({ group: "helper_a", action: "extern", why: "--extern helper_a (explicit)", modules: ["helper_a"] });
    expect((await inspectArchive(output)).modules.sort()).toEqual(["helper_b", "net"]);
    const error = await packModel({ target: `${NET}:build`, output: join(dir, "x.coil"), deny: ["helper_*"], python }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "PYTHON_ERROR", pythonType: "coil_package.UnresolvedModulesError" });
    const message = (error as Error).message;
    expect(message).toContain("helper_a");
    expect(message).toContain("helper_b");
    expect(message).toContain("--deny");
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

const batch = (shape: number[]) => [-1, ...shape];
const float = (name: string, shape: number[]): TensorSpec => ({ name, dtype: "float32", shape });

/** Fixture models packed with no patterns at all; each must load in Coil and in stock
 * torch.package and compute what it computes eagerly. */
const MODELS: {
  name: string;
  file: string;
  factory: string;
  example?: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  modules: string[];
  distributions: string[];
}[] = [
  {
    name: "a model with a sibling module and a subpackage",
    file: "helper/model.py",
    factory: "build",
    inputs: [float("x", batch([4]))],
    outputs: [float("output__0", batch([3]))],
    modules: ["blocks.activations", "blocks.mlp", "layers", "model"],
    distributions: ["torch"],
  },
  {
    name: "torchvision resnet18",
    file: "zoo/vision.py",
    factory: "resnet18",
    inputs: [float("x", batch([3, 64, 64]))],
    outputs: [float("output__0", batch([10]))],
    modules: [],
    distributions: ["torch", "torchvision"],
  },
  {
    name: "torchvision mobilenet_v3_small",
    file: "zoo/vision.py",
    factory: "mobilenet",
    inputs: [float("x", batch([3, 64, 64]))],
    outputs: [float("output__0", batch([10]))],
    modules: [],
    distributions: ["torch", "torchvision"],
  },
  {
    name: "a model returning a dict",
    file: "zoo/named_outputs.py",
    factory: "build",
    inputs: [float("features", batch([6]))],
    outputs: [float("logits", batch([4])), float("probabilities", batch([4]))],
    modules: ["named_outputs"],
    distributions: ["torch"],
  },
  {
    name: "two inputs, a tuple of outputs, examples named with --example",
    file: "zoo/two_inputs.py",
    factory: "build",
    example: "sample",
    inputs: [float("image", batch([1, 8, 8])), float("extra", batch([5]))],
    outputs: [float("output__0", batch([2])), float("output__1", batch([1]))],
    modules: ["two_inputs"],
    distributions: ["torch"],
  },
  {
    name: "integer inputs",
    file: "zoo/token_ids.py",
    factory: "build",
    inputs: [
      { name: "tokens", dtype: "int64", shape: batch([4]) },
      { name: "mask", dtype: "int32", shape: batch([4]) },
    ],
    outputs: [float("output__0", batch([3]))],
    modules: ["token_ids"],
    distributions: ["torch"],
  },
  {
    name: "a model that takes one batch size only",
    file: "zoo/fixed_batch.py",
    factory: "build",
    inputs: [float("x", [4, 3])],
    outputs: [float("output__0", [4, 3])],
    modules: ["fixed_batch"],
    distributions: ["torch"],
  },
];
// Which of those the test Python can import (each distribution here imports under its
// own name): the venv stack has no torchvision, so its models run on the Debian stack only.
const PACKAGES = await inspectPython(python, [...new Set(MODELS.flatMap((m) => m.distributions))]);

describe("zero-config packing and inferred signatures", () => {
  let pool: InterpreterPool;
  beforeAll(async () => {
    pool = await InterpreterPool.create({ size: 1, python, backend: new CpuBackend() });
  });
  afterAll(() => pool?.close());

  for (const model of MODELS) {
    const lacking = model.distributions.filter((d) => !PACKAGES.modules[d]);
    const name = `${model.name}: packs with no patterns, infers its signature, equals eager in Coil and torch.package`;
    it.skipIf(lacking.length > 0)(lacking.length ? `${name} (skipped: the test Python has no ${lacking.join(", ")})` : name, () => packsLikeEager(model));
  }

  async function packsLikeEager(model: (typeof MODELS)[number]) {
    const file = join(ZERO, model.file);
    const archive = join(dir, `${model.factory}-${model.file.replace(/\W/g, "_")}.coil`);
    const result = await packModel({ target: `${file}:${model.factory}`, output: archive, python, ...(model.example && { example: model.example }) });
    expect(result).toMatchObject({ inputs: model.inputs, outputs: model.outputs, signature: { inputs: "inferred", outputs: "inferred" }, warnings: [] });
    expect(result.distributions.map((d) => d.name)).toEqual(model.distributions);
    const report = await inspectArchive(archive);
    expect(report.modules.sort()).toEqual(model.modules);
    expect(report.manifest).toMatchObject({ inputs: model.inputs, outputs: model.outputs, distributions: result.distributions });
    const equivalence = await compareWithEager({ python, file, factory: model.factory, example: model.example ?? "example_inputs", archive, pool });
    expect(equivalence.outputs).toEqual(model.outputs.map((o) => o.name));
    expect(equivalence.sameShapes).toBe(true);
    expect(equivalence.coilError).toBeLessThanOrEqual(1e-4);
    expect(equivalence.packageImporterError).toBeLessThanOrEqual(1e-4);
  }

  it("says why each group of modules went where it did", async () => {
    const result = await packModel({ target: `${join(ZERO, "helper", "model.py")}:build`, output: join(dir, "why.coil"), python });
    const own = "source in helper/ (the model file's folder)";
    expect(result.decisions).toEqual(
      expect.arrayContaining([
        { group: "model", action: "intern", why: "the factory's module", modules: ["model"] },
        { group: "layers", action: "intern", why: own, modules: ["layers"] },
        { group: "blocks", action: "intern", why: own, modules: ["blocks.activations", "blocks.mlp"] },
        expect.objectContaining({ group: "torch", action: "extern" }),
      ]),
    );
    const table = formatDecisions(result.decisions);
    expect(table).toMatch(/blocks \(2 modules\)\s+intern\s+source in helper\//);
    expect(table.indexOf("intern")).toBeLessThan(table.indexOf("extern"));
  });

  it("packs the modules under --root, for a model in a subfolder of its project", async () => {
    const project = join(ZERO, "rooted");
    const output = join(dir, "rooted.coil");
    const result = await packModel({ target: `${join(project, "app", "model.py")}:build`, output, root: project, python });
    expect(result.decisions).toContainEqual({ group: "shared", action: "intern", why: "source in rooted/ (--root)", modules: ["shared"] });
    expect((await inspectArchive(output)).modules.sort()).toEqual(["model", "shared"]);
  });

  it("warns that the served metadata will be empty without example inputs or a given signature", async () => {
    const result: PackResult = await packModel({ target: `${NET}:build`, output: join(dir, "unsigned.coil"), python });
    expect(result.signature).toEqual({ inputs: "none", outputs: "none" });
    expect(result.warnings).toEqual([expect.stringMatching(/"inputs": \[\][\s\S]*example_inputs\(\) in net\.py[\s\S]*--example NAME[\s\S]*--input/)]);
    expect((await inspectArchive(join(dir, "unsigned.coil"))).manifest).not.toHaveProperty("inputs");
  });

  it("lets a given signature replace the inferred one, each side on its own", async () => {
    const given: TensorSpec[] = [{ name: "tokens", dtype: "int64", shape: [2, 4] }];
    const result = await packModel({ target: `${join(ZERO, "zoo", "token_ids.py")}:build`, output: join(dir, "given.coil"), python, inputs: given });
    expect(result).toMatchObject({ inputs: given, signature: { inputs: "given", outputs: "inferred" } });
    expect(result.outputs).toEqual([float("output__0", batch([3]))]);
  });

  it("packs a model whose own example_inputs() are not tensors, saying why it infers nothing", async () => {
    const file = join(ZERO, "zoo", "text_lengths.py");
    const result = await packModel({ target: `${file}:build`, output: join(dir, "text.coil"), python });
    expect(result.signature).toEqual({ inputs: "none", outputs: "none" });
    expect(result.warnings).toEqual([
      expect.stringMatching(/^no signature inferred: example_inputs\(\) must return a tensor or a tuple of tensors, got a list of list/),
      expect.stringContaining('"inputs": []'),
    ]);
    // Named with --example, the same function must work.
    await expect(packModel({ target: `${file}:build`, output: join(dir, "text2.coil"), python, example: "example_inputs" })).rejects.toMatchObject({
      pythonType: "coil_package.ExampleInputsError",
    });
  });

  it("bakes parametrized weights (weight_norm's kind) into plain ones, says so, and equals eager", async () => {
    const file = join(ZERO, "zoo", "parametrized.py");
    const archive = join(dir, "parametrized.coil");
    const result = await packModel({ target: `${file}:build`, output: archive, python });
    expect(result.warnings).toEqual([expect.stringMatching(/^parametrized tensors baked into plain ones .*: square\.weight/)]);
    expect(result.signature).toEqual({ inputs: "inferred", outputs: "inferred" });
    const equivalence = await compareWithEager({ python, file, factory: "build", example: "example_inputs", archive, pool });
    expect(equivalence.sameShapes).toBe(true);
    expect(equivalence.coilError).toBeLessThanOrEqual(1e-5);
    expect(equivalence.packageImporterError).toBeLessThanOrEqual(1e-5);
  });

  it("does not run the examples when the signature is given in full", async () => {
    const file = join(ZERO, "zoo", "text_lengths.py");
    const inputs: TensorSpec[] = [{ name: "texts", dtype: "bytes", shape: [-1] }];
    const outputs: TensorSpec[] = [float("lengths", [-1])];
    const result = await packModel({ target: `${file}:build`, output: join(dir, "text3.coil"), python, inputs, outputs });
    expect(result).toMatchObject({ inputs, outputs, signature: { inputs: "given", outputs: "given" }, warnings: [] });
    // A broken example function named with --example is still run, and reported.
    await expect(
      packModel({ target: `${file}:build`, output: join(dir, "text4.coil"), python, example: "broken_examples", inputs, outputs }),
    ).rejects.toMatchObject({ pythonType: "coil_package.ExampleInputsError", message: expect.stringContaining("broken_examples() raised RuntimeError") });
  });

  it("refuses to infer from an example function that is not there", async () => {
    await expect(
      packModel({ target: `${join(ZERO, "zoo", "token_ids.py")}:build`, output: join(dir, "no-example.coil"), python, example: "nope" }),
    ).rejects.toMatchObject({ pythonType: "coil_package.ExampleInputsError", message: expect.stringContaining("'nope'") });
  });
});

describe("the distributions an archive needs", () => {
  const file = join(ZERO, "installed", "model", "model.py");
  let archive: string;
  let pool: InterpreterPool | undefined;
  beforeAll(async () => {
    archive = join(dir, "needs-dep.coil");
    const result = await packModel({ target: `${file}:build`, output: archive, python });
    expect(result.distributions).toContainEqual({ name: "coil-fixture-dep", version: "1.0", modules: ["coil_fixture_dep"] });
  });
  afterAll(() => pool?.close());

  it("refuses to load where a distribution is missing, naming it, the version and the fix", async () => {
    pool = await InterpreterPool.create({ size: 1, python, backend: new CpuBackend() });
    const error = await pool.loadArchive(archive, { eager: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "DEPENDENCY_MISSING", details: { pythonType: "coil_package.MissingDistributionError" } });
    expect((error as Error).message).toMatch(/needs the distribution coil-fixture-dep \(packed with coil-fixture-dep 1\.0/);
    expect((error as Error).message).toContain(`${python} -m pip install "coil-fixture-dep==1.0"`);
  });

  it("warns, naming both versions, where the version differs, and loads", async () => {
    pool ??= await InterpreterPool.create({ size: 1, python, backend: new CpuBackend() });
    const [interpreter] = pool.interpreters;
    // This interpreter has version 2.0.
    await interpreter!.call("exec_source", [`import sys\nsys.path.insert(0, ${JSON.stringify(join(ZERO, "installed", "site-v2"))})`]);
    const model = await pool.loadArchive(archive, { eager: true });
    expect(model.warnings).toEqual([expect.stringMatching(/packed with coil-fixture-dep 1\.0; this Python \(.*\) has coil-fixture-dep 2\.0/)]);
    expect((await model.call<Tensor>([Tensor.from("float32", [2], [1, 2])])).toArray()).toEqual([2, 3]);
    await model.unload();
  });
});

describe("the coil command", () => {
  it("packs with no patterns, prints its decisions and signature, and inspects, re-executing itself with the glibc tunable", async () => {
    const env = { ...process.env };
    delete env.GLIBC_TUNABLES; // the CLI must add it itself
    const run = (args: string[]) => promisify(execFile)(process.execPath, [CLI, ...args], { env, cwd: dir });
    const output = join(dir, "cli.coil");
    const packed = await run(["pack", `${join(ZERO, "helper", "model.py")}:build`, "-o", output, "--python", python]);
    console.log(packed.stdout);
    expect(packed.stdout).toMatch(/layers\s+intern\s+source in helper\//);
    expect(packed.stdout).toContain("inputs (inferred): x float32[-1, 4]");
    expect(packed.stdout).toContain("packed model.Net");
    const inspected = await run(["inspect", output, "--json"]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ root: "cli", manifest: { entryPoint: { package: "coil_entry" } } });
    expect((await run(["inspect", output])).stdout).toMatch(/needs \(checked when loading\): torch /);
    const quiet = await run(["pack", `${NET}:build`, "-o", join(dir, "cli-quiet.coil"), "--python", python, "--quiet"]);
    expect(quiet.stdout).not.toContain("intern");
    expect(quiet.stderr).toContain("coil pack: warning: no signature");
    const bad = await run(["pack", "nofactory.py", "-o", output]).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("INVALID_ARGUMENT") });
  });
});
