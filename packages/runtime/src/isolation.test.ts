import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { interpreterStats } from "@coil/native";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

import { main } from "./commands.js";
import { createRuntime, type Runtime } from "./create-runtime.js";
import { packModel } from "./pack.js";

const PYTHON = inject("testPython");
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/isolation");
const ROWS = [
  [1, 2, 3, 4],
  [-1, 0.5, 2, -3],
];

let repo: string;
let victimArchive: string;
let runtime: Runtime;
let http: string;
let expected: number[];

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-isolation-"));
  victimArchive = join(repo, "victim.coil");
  const signature = {
    inputs: [{ name: "x", dtype: "float32" as const, shape: [-1, 4] }],
    outputs: [{ name: "y", dtype: "float32" as const, shape: [-1, 2] }],
  };
  await packModel({ target: `${FIXTURES}/victim.py:build`, output: victimArchive, python: PYTHON, ...signature });
  await packModel({ target: `${FIXTURES}/patcher.py:build`, output: join(repo, "patcher.coil"), python: PYTHON, ...signature });
  await packModel({ target: `${FIXTURES}/walker.py:build`, output: join(repo, "walker.coil"), python: PYTHON, ...signature });
  // What the victim computes in a Python nobody patched.
  expected = JSON.parse(
    execFileSync(PYTHON, [
      "-c",
      "import sys, json, torch; sys.path.insert(0, sys.argv[1]); import victim\n" +
        "with torch.inference_mode(): print(json.dumps(victim.build()(torch.tensor(json.loads(sys.argv[2]))).flatten().tolist()))",
      FIXTURES,
      JSON.stringify(ROWS),
    ]).toString(),
  ) as number[];
  runtime = await createRuntime({
    repository: repo,
    python: PYTHON,
    instances: 1,
    // Loaded later: two trusted models sharing one group, and one asking for more than the budget.
    models: { "shared-1": { group: "trusted" }, "shared-2": { group: "trusted" }, "walker-shared": { group: "trusted" }, greedy: { instances: 15 } },
    plugins: ["@coil/backend-cpu", { module: "@coil/adapter-http", options: { host: "127.0.0.1", port: 0 } }],
  });
  http = runtime.adapters[0]!.url!;
}, 180_000);

afterAll(async () => {
  await runtime?.close();
});

async function infer(model: string): Promise<{ status: number; data: number[] }> {
  const response = await fetch(`${http}/v2/models/${model}/infer`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs: [{ name: "x", shape: [ROWS.length, 4], datatype: "FP32", data: ROWS.flat() }] }),
  });
  const body = (await response.json()) as { outputs?: { data: number[] }[] };
  return { status: response.status, data: body.outputs?.[0]?.data ?? [] };
}

function expectClose(actual: number[], wanted: number[]): void {
  expect(actual).toHaveLength(wanted.length);
  actual.forEach((value, i) => expect(value).toBeCloseTo(wanted[i]!, 5));
}

describe("models do not share Python", () => {
  it("gives each model interpreters of its own: one that patches torch as it loads leaves another's outputs alone", async () => {
    const patcher = runtime.service.groupOf("patcher")!;
    const victim = runtime.service.groupOf("victim")!;
    expect(patcher.interpreters).toHaveLength(1);
    expect(victim.interpreters).toHaveLength(1);
    expect(patcher.interpreters).not.toContain(victim.interpreters[0]);
    // The patch took in the patcher's own interpreter (its relu answers 42)...
    expect(await infer("patcher")).toEqual({ status: 200, data: [42, 42, 42, 42] });
    // ...and nowhere else.
    const answer = await infer("victim");
    expect(answer.status).toBe(200);
    expectClose(answer.data, expected);
    // Walking gc, a model finds no other archive's objects.
    expect(await infer("walker")).toEqual({ status: 200, data: [0, 0, 0, 0] });
  });

  it("unloading a model returns its interpreter reset: its patches undone, its spinning thread stopped, a model loaded there computes right", async () => {
    const freed = runtime.service.groupOf("patcher")!.interpreters;
    await runtime.service.unloadModel("patcher");
    expect(runtime.service.groupOf("patcher")).toBeUndefined();
    // Its thread ended (else the interpreter would be held back from the next model).
    expect(interpreterStats().quarantined).toBe(0);
    copyFileSync(victimArchive, join(repo, "third.coil"));
    await runtime.service.loadModel("third");
    // The only idle interpreter was the patcher's.
    expect(runtime.service.groupOf("third")!.interpreters).toEqual(freed);
    const answer = await infer("third");
    expect(answer.status).toBe(200);
    expectClose(answer.data, expected);
  });

  it("lets models named into one group share its interpreters", async () => {
    copyFileSync(victimArchive, join(repo, "shared-1.coil"));
    copyFileSync(victimArchive, join(repo, "shared-2.coil"));
    await runtime.service.loadModel("shared-1");
    await runtime.service.loadModel("shared-2");
    const one = runtime.service.groupOf("shared-1")!;
    expect(one.group).toBe("trusted");
    expect(runtime.service.groupOf("shared-2")).toEqual(one);
    expectClose((await infer("shared-2")).data, expected);
    // Sharing is what it says: a model of the group sees the others' objects.
    copyFileSync(join(repo, "walker.coil"), join(repo, "walker-shared.coil"));
    await runtime.service.loadModel("walker-shared");
    expect((await infer("walker-shared")).data[0]).toBe(2);
  });

  it("refuses a model past the interpreter budget with a typed error that names the budget and how to share", async () => {
    copyFileSync(victimArchive, join(repo, "greedy.coil"));
    const before = interpreterStats().created;
    await expect(runtime.service.loadModel("greedy")).rejects.toMatchObject({
      code: "INTERPRETER_LIMIT",
      message: expect.stringMatching(/model greedy needs 15 interpreter.*budget of \d+.*"instances".*"group"/s),
    });
    expect(interpreterStats().created).toBe(before);
    expect(runtime.service.modelIndex().find((m) => m.name === "greedy")).toMatchObject({ state: "UNAVAILABLE", reason: expect.stringContaining("INTERPRETER_LIMIT") });
    // The others serve on.
    expect((await infer("victim")).status).toBe(200);
  });

  it("reports each interpreter's heap, each model's, and each archive's size in /metrics", async () => {
    await fetch(`${http}/metrics`); // a scrape samples anew for the next one
    const text = await (await fetch(`${http}/metrics`)).text();
    const victim = runtime.service.groupOf("victim")!.interpreters[0]!;
    const heap = Number(new RegExp(`coil_interpreter_heap_bytes\\{interpreter="${victim}",group="victim"\\} (\\d+)`).exec(text)?.[1]);
    // torch's import alone allocates megabytes; one interpreter holds far less than 64 GiB.
    expect(heap).toBeGreaterThan(1e6);
    expect(heap).toBeLessThan(2 ** 36);
    const model = Number(/coil_model_heap_bytes\{model="victim",version="1",group="victim"\} (\d+)/.exec(text)?.[1]);
    expect(model).toBeGreaterThan(1e6);
    const archive = Number(/coil_model_archive_bytes\{model="victim",version="1"\} (\d+)/.exec(text)?.[1]);
    expect(archive).toBe(statSync(victimArchive).size);
    expect(text).toMatch(new RegExp(`coil_interpreter_stuck\\{interpreter="${victim}",group="victim"\\} 0`));
  });

  it("coil serve takes --instances and coil.json \"models\", and refuses a malformed one before starting", async () => {
    const config = join(mkdtempSync(join(tmpdir(), "coil-isolation-config-")), "coil.json");
    writeFileSync(config, JSON.stringify({ models: { victim: { instances: 2, gruop: "x" } } }));
    await expect(main(["serve", repo, "--config", config, "--http-port", "-1", "--grpc-port", "-1"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining('models".victim takes "instances"'),
    });
    writeFileSync(config, JSON.stringify({ models: { victim: { instances: 0 } } }));
    await expect(main(["serve", repo, "--config", config, "--http-port", "-1", "--grpc-port", "-1"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("models.victim.instances must be an integer from 1 to 15"),
    });
    await expect(main(["serve", repo, "--instances", "two", "--http-port", "-1", "--grpc-port", "-1"])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("logs a model whose threads outlive its unload, and holds its interpreter back until they end", async () => {
    const folder = mkdtempSync(join(tmpdir(), "coil-isolation-lingerer-"));
    await packModel({
      target: `${FIXTURES}/lingerer.py:build`,
      output: join(folder, "lingerer.coil"),
      python: PYTHON,
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
    });
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const logger = { warn: (fields: Record<string, unknown>, message: string) => void warnings.push({ fields, message }) };
    const lingering = await createRuntime({ repository: folder, python: PYTHON, instances: 1, logger, plugins: ["@coil/backend-cpu"] });
    try {
      await lingering.service.unloadModel("lingerer");
      expect(warnings).toContainEqual({
        fields: { model: "lingerer", version: "1", heldBack: [expect.stringContaining("lingerer-thread")] },
        message: expect.stringContaining("held back"),
      });
      // (Packing it started the thread in the packing interpreter too: that one is held back as well.)
      const warned = warnings.find((w) => w.fields.model === "lingerer")!.fields.heldBack as string[];
      expect(interpreterStats().heldBack).toEqual(expect.arrayContaining(warned));
    } finally {
      await lingering.close();
    }
  }, 60_000);
});
