import { execFile, execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { TOKENS, type CoilPlugin } from "@coil/core";
import { GLIBC_TUNABLE } from "@coil/native";
import { beforeAll, describe, expect, inject, it } from "vitest";

import { netRepository } from "../test/net-repository.js";
import { startServe } from "../test/serve-process.js";
import { acceleratorFor, parseAccelerateFlags } from "./accelerator-selection.js";
import { createRuntime } from "./create-runtime.js";
import { main } from "./commands.js";
import { servePlugins } from "./serve.js";

const PYTHON = inject("testPython");
const curl = promisify(execFile);

/** What this stack's Python can accelerate with: torch.compile needs torch 2, the other onnxruntime. */
const STACK = JSON.parse(
  execFileSync(
    PYTHON,
    ["-c", "import json, importlib.util, torch; print(json.dumps({'compile': hasattr(torch, 'compile'), 'onnxruntime': importlib.util.find_spec('onnxruntime') is not None}))"],
    { encoding: "utf8" },
  ),
) as { compile: boolean; onnxruntime: boolean };

/** A repository of two copies of the net model, "net" and "other"; caches of its own. */
let repo: string;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  repo = await netRepository(PYTHON);
  copyFileSync(join(repo, "net.coil"), join(repo, "other.coil"));
  const cache = mkdtempSync(join(tmpdir(), "coil-accelerate-cache-"));
  // The accelerators' default caches, under this test's folder (Inductor reads the variable at each compile).
  env = { ...process.env, XDG_CACHE_HOME: cache, TORCHINDUCTOR_CACHE_DIR: join(cache, "inductor") };
  Object.assign(process.env, { XDG_CACHE_HOME: env.XDG_CACHE_HOME });
}, 120_000);

/** The Prometheus sample of coil_model_accelerator for one model. */
function acceleratorSample(metrics: string, model: string): string | undefined {
  return metrics.split("\n").find((line) => line.startsWith(`coil_model_accelerator{model="${model}"`));
}

describe("choosing accelerators", () => {
  it("reads --accelerate NAME and MODEL=NAME over the config file's choice", () => {
    const selection = parseAccelerateFlags(["compile", "net=onnxruntime"], { other: "none" });
    expect(selection).toEqual({ other: "none", "*": "compile", net: "onnxruntime" });
    expect(acceleratorFor(selection, "net")).toBe("onnxruntime");
    expect(acceleratorFor(selection, "bert")).toBe("compile");
    expect(acceleratorFor(selection, "other")).toBeUndefined();
    expect(acceleratorFor("compile", "any")).toBe("compile");
    expect(() => parseAccelerateFlags(["net=Fast!"])).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => parseAccelerateFlags(["=compile"])).toThrow(/MODEL=NAME/);
  });

  it("names the package of an unknown accelerator, before starting anything", async () => {
    await expect(main(["serve", repo, "--accelerate", "tensorrt"])).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: expect.stringContaining("npm install @coil/accelerator-tensorrt"),
    });
  });
});

describe("a runtime with accelerators", () => {
  it("runs one model on onnxruntime and the others compiled, shown in metadata and /metrics", async () => {
    const runtime = await createRuntime({
      repository: repo,
      interpreters: 1,
      python: PYTHON,
      accelerate: { net: "onnxruntime", "*": "compile" },
      plugins: servePlugins({ host: "127.0.0.1", httpPort: 0, grpcPort: null }),
    });
    try {
      const base = runtime.adapters[0]!.url!;
      for (const [model, accelerator, available] of [
        ["net", "onnxruntime", STACK.onnxruntime],
        ["other", "compile", STACK.compile],
      ] as const) {
        const { parameters } = runtime.service.model(model);
        // Where the stack lacks what the accelerator needs, the model serves eager and says why.
        expect(parameters).toMatchObject({ accelerator, accelerator_active: available });
        if (!available) expect(parameters!["accelerator_reason"]).toMatch(accelerator === "compile" ? /torch >= 2.0/ : /no onnxruntime/);
        // The Open Inference Protocol's model metadata carries them as parameters.
        const metadata = JSON.parse((await curl("curl", ["-s", `${base}/v2/models/${model}`])).stdout) as { parameters?: Record<string, unknown> };
        expect(metadata.parameters).toEqual(parameters);
        const metrics = (await curl("curl", ["-s", `${base}/metrics`])).stdout;
        expect(acceleratorSample(metrics, model)).toBe(`coil_model_accelerator{model="${model}",version="1",accelerator="${accelerator}",active="${available}"} 1`);
        for (const rows of [1, 3]) {
          const body = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [rows, 4], data: Array.from({ length: rows * 4 }, (_, i) => i / 10) }] });
          const reply = JSON.parse((await curl("curl", ["-s", "-d", body, `${base}/v2/models/${model}/infer`])).stdout) as { outputs: { shape: number[] }[] };
          expect(reply.outputs[0]!.shape).toEqual([rows, 2]);
        }
      }
    } finally {
      await runtime.close();
    }
  }, 600_000);
});

describe("an accelerated form that fails on a call", () => {
  it("is answered by eager, counted in /metrics, and logged once per error", async () => {
    const hooks = join(mkdtempSync(join(tmpdir(), "coil-flaky-accelerator-")), "flaky.py");
    writeFileSync(
      hooks,
      "def accelerate(model, request):\n" +
        "    def run(x):\n" +
        "        if x.shape[0] == 5:\n" +
        "            raise RuntimeError('no kernel for 5 rows')\n" +
        "        return model(x)\n" +
        "    return run\n",
    );
    const flaky: CoilPlugin = (container) =>
      container.register(TOKENS.Accelerator, {
        useValue: { name: "flaky", hook: { file: hooks, function: "accelerate" }, tolerance: { rtol: 1e-5, atol: 1e-6 }, hookOptions: () => ({}) },
      });
    const warnings: [Record<string, unknown>, string][] = [];
    const runtime = await createRuntime({
      repository: repo,
      interpreters: 1,
      python: PYTHON,
      accelerate: { net: "flaky" },
      logger: { warn: (fields, message) => warnings.push([fields, message]), info: () => {} },
      plugins: [...servePlugins({ host: "127.0.0.1", httpPort: 0, grpcPort: null }), flaky],
    });
    try {
      const base = runtime.adapters[0]!.url!;
      expect(runtime.service.model("net").parameters).toMatchObject({ accelerator: "flaky", accelerator_active: true });
      for (const rows of [5, 5, 3]) {
        const body = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [rows, 4], data: new Array(rows * 4).fill(1) }] });
        const reply = await fetch(`${base}/v2/models/net/infer`, { method: "POST", body });
        expect(reply.status).toBe(200);
        expect(((await reply.json()) as { outputs: { shape: number[] }[] }).outputs[0]!.shape).toEqual([rows, 2]);
      }
      // Sampled after each scrape: the second scrape shows the first's sample.
      await fetch(`${base}/metrics`).then((r) => r.text());
      await expect.poll(async () => (await fetch(`${base}/metrics`).then((r) => r.text())).split("\n").find((l) => l.startsWith("coil_model_accelerator_fallback_calls_total"))).toBe(
        'coil_model_accelerator_fallback_calls_total{model="net",version="1",accelerator="flaky"} 2',
      );
      const logged = warnings.filter(([, message]) => message.startsWith("model: the accelerated form failed"));
      expect(logged).toEqual([[expect.objectContaining({ model: "net", accelerator: "flaky", error: "RuntimeError: no kernel for 5 rows" }), expect.any(String)]]);
    } finally {
      await runtime.close();
    }
  }, 120_000);
});

describe("coil serve --accelerate", () => {
  it("serves over HTTP with the accelerators of coil.json and the flags, mixed", async () => {
    const childEnv: NodeJS.ProcessEnv = { ...env, GLIBC_TUNABLES: GLIBC_TUNABLE };
    delete childEnv.NODE_OPTIONS;
    const config = join(repo, "..", `coil-accelerate-${Date.now()}.json`);
    writeFileSync(config, JSON.stringify({ repository: repo, host: "127.0.0.1", interpreters: 1, python: PYTHON, accelerate: { other: "onnxruntime" } }));
    // The flags: compile for every model, but "other" keeps the file's onnxruntime and "net" is named again.
    const args = ["serve", "--config", config, "--http-port", "0", "--grpc-port", "-1", "--accelerate", "compile", "--accelerate", "other=onnxruntime"];
    const { child, logs, serving, exited } = startServe(args, { env: childEnv });
    try {
      const ready = await serving;
      for (const [model, accelerator, available] of [
        ["net", "compile", STACK.compile],
        ["other", "onnxruntime", STACK.onnxruntime],
      ] as const) {
        expect(logs).toContainEqual(expect.objectContaining({ msg: "model ready", model, accelerator, accelerator_active: available }));
        const metrics = (await curl("curl", ["-s", `http://127.0.0.1:${ready.http as number}/metrics`])).stdout;
        expect(acceleratorSample(metrics, model)).toBe(`coil_model_accelerator{model="${model}",version="1",accelerator="${accelerator}",active="${available}"} 1`);
      }
    } finally {
      child.kill("SIGTERM");
    }
    expect((await exited).code).toBe(0);
  }, 600_000);
});
