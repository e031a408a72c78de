import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { LeastLoadedScheduler, Tensor, TOKENS, type Adapter, type CoilPlugin, type InferenceService, type Interpreter } from "@coil/core";
import { beforeAll, describe, expect, inject, it } from "vitest";

import { netRepository } from "../test/net-repository.js";
import { createRuntime } from "./create-runtime.js";
import { DEFAULT_PLUGINS, type PluginEntry } from "./plugins.js";

const PYTHON = inject("testPython");
let repo: string;

beforeAll(async () => {
  repo = await netRepository(PYTHON);
}, 60_000);

/** A real (if tiny) adapter: records its lifecycle and serves through the service. */
class RecordingAdapter implements Adapter {
  readonly name = "recording";
  events: string[] = [];
  constructor(readonly service: InferenceService) {}
  async start() {
    this.events.push(`start:${this.service.modelIndex().length}`);
  }
  async stop() {
    this.events.push("stop");
  }
}

const PLUGINS = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/plugins");
const base = { repository: "", interpreters: 1, python: PYTHON };

describe("createRuntime", () => {
  it("assembles pool, models and adapters from plugins, and closes them in order", async () => {
    let adapter: RecordingAdapter | undefined;
    const recording: CoilPlugin = (container) =>
      container.register(TOKENS.Adapter, { useFactory: (c) => (adapter = new RecordingAdapter(c.resolve(TOKENS.InferenceService))) });
    const runtime = await createRuntime({ ...base, repository: repo, plugins: ["@coil/backend-cpu", recording] });
    expect(runtime.pool.backend.name).toBe("cpu");
    expect(runtime.adapters).toEqual([adapter]);
    expect(adapter!.events).toEqual(["start:1"]);
    const response = await runtime.service.infer("net", undefined, { inputs: [{ name: "x", tensor: Tensor.zeros("float32", [1, 4]) }] });
    expect(response.outputs[0]!.tensor.shape).toEqual([1, 2]);
    await runtime.close();
    expect(adapter!.events).toEqual(["start:1", "stop"]);
    expect(runtime.pool.closed).toBe(true);
    expect(runtime.service.isLive()).toBe(false);
  });

  it("starts the default plugins: the CPU backend and both protocol adapters", async () => {
    const runtime = await createRuntime({
      ...base,
      repository: repo,
      plugins: [
        ...DEFAULT_PLUGINS.slice(0, 1),
        { module: "@coil/adapter-http", options: { host: "127.0.0.1", port: 0 } },
        { module: "@coil/adapter-grpc", options: { host: "127.0.0.1", port: 0 } },
      ],
    });
    try {
      expect(DEFAULT_PLUGINS).toEqual(["@coil/backend-cpu", "@coil/adapter-http", "@coil/adapter-grpc"]);
      expect(runtime.adapters.map((a) => a.name)).toEqual(["http", "grpc"]);
      const http = runtime.adapters[0]!.url!;
      expect((await fetch(`${http}/v2/health/ready`)).status).toBe(200);
      expect(runtime.adapters[1]!.url).toMatch(/^grpc:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await runtime.close();
    }
  });

  it("serves models through a third-party adapter loaded from a file", async () => {
    const runtime = await createRuntime({
      ...base,
      repository: repo,
      plugins: ["@coil/backend-cpu", { module: "./rest-adapter.mjs", options: { tag: "third-party" } }],
      pluginBaseDir: PLUGINS,
    });
    try {
      const [rest] = runtime.adapters;
      expect(rest!.name).toBe("rest");
      expect(await (await fetch(`${rest!.url}/models`)).json()).toEqual(["net"]);
      const answer = await fetch(`${rest!.url}/models/net`, { method: "POST", body: JSON.stringify({ x: [[0, 0, 0, 0]] }) });
      const body = (await answer.json()) as Record<string, unknown>;
      const direct = await runtime.service.infer("net", undefined, { inputs: [{ name: "x", tensor: Tensor.zeros("float32", [1, 4]) }] });
      expect(body).toEqual({ "third-party": true, y: [Array.from(direct.outputs[0]!.tensor.data as Float32Array)] });
    } finally {
      await runtime.close();
    }
  });

  it("takes the scheduler a plugin registers", async () => {
    const picks: number[] = [];
    class CountingScheduler extends LeastLoadedScheduler {
      override pick(interpreters: readonly Interpreter[]): Interpreter {
        const chosen = super.pick(interpreters);
        picks.push(chosen.index);
        return chosen;
      }
    }
    const counting: CoilPlugin = (container) => container.register(TOKENS.Scheduler, { useValue: new CountingScheduler() });
    const runtime = await createRuntime({ ...base, repository: repo, plugins: ["@coil/backend-cpu", counting] });
    try {
      const before = picks.length;
      await runtime.service.infer("net", undefined, { inputs: [{ name: "x", tensor: Tensor.zeros("float32", [1, 4]) }] });
      expect(picks.length).toBe(before + 1);
      expect(picks.at(-1)).toBe(runtime.pool.interpreters[0]!.index);
    } finally {
      await runtime.close();
    }
  });

  it("says clearly when the CUDA backend finds no GPU, and gives the interpreters back", async () => {
    await expect(createRuntime({ ...base, repository: repo, plugins: ["@coil/backend-cuda"] })).rejects.toMatchObject({
      code: "BACKEND_UNAVAILABLE",
    });
  });

  it("names the plugin and the cause when one cannot be loaded or registered", async () => {
    const attempt = (plugin: PluginEntry) => createRuntime({ ...base, repository: repo, plugins: [plugin], pluginBaseDir: PLUGINS });
    await expect(attempt("@coil/backend-tpu")).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: expect.stringMatching(/could not load plugin @coil\/backend-tpu: .*npm install @coil\/backend-tpu/),
      details: { module: "@coil/backend-tpu", stage: "load" },
    });
    await expect(attempt("./missing.mjs")).rejects.toMatchObject({ code: "PLUGIN_FAILED", message: expect.stringContaining("./missing.mjs") });
    await expect(attempt("./no-default.mjs")).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: expect.stringContaining("no default export"),
    });
    await expect(attempt({ module: "./throws.mjs", options: { port: -1 } })).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: 'plugin ./throws.mjs failed to register: throws plugin: bad options {"port":-1}',
      details: { module: "./throws.mjs", stage: "register", code: "INVALID_ARGUMENT" },
      cause: { code: "INVALID_ARGUMENT" },
    });
    await expect(attempt({ module: "@coil/adapter-http", options: { port: 70000 } })).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      details: { module: "@coil/adapter-http", code: "INVALID_ARGUMENT" },
    });
  });

  it("refuses to start without a backend plugin", async () => {
    await expect(createRuntime({ ...base, repository: repo, plugins: [] })).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE" });
  });
});
