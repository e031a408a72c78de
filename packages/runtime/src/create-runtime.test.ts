import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Tensor, type Adapter, type InferenceService } from "@coil/core";
import { beforeAll, describe, expect, it } from "vitest";

import { createRuntime } from "./create-runtime.js";
import { packModel } from "./pack.js";

const NET = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures/split/net.py");
let repo: string;

beforeAll(async () => {
  repo = mkdtempSync(join(tmpdir(), "coil-runtime-"));
  await packModel({ target: `${NET}:build`, output: join(repo, "net.coil"), intern: ["helper_*"], python: "/usr/bin/python3" });
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

describe("createRuntime", () => {
  it("assembles pool, models and adapters, and closes them in order", async () => {
    let adapter: RecordingAdapter | undefined;
    const runtime = await createRuntime({
      repository: repo,
      interpreters: 1,
      python: "/usr/bin/python3",
      adapters: [(service) => (adapter = new RecordingAdapter(service))],
    });
    expect(runtime.pool.backend.name).toBe("cpu");
    expect(adapter!.events).toEqual(["start:1"]);
    const response = await runtime.service.infer("net", undefined, { inputs: [{ name: "x", tensor: Tensor.zeros("float32", [1, 4]) }] });
    expect(response.outputs[0]!.tensor.shape).toEqual([1, 2]);
    await runtime.close();
    expect(adapter!.events).toEqual(["start:1", "stop"]);
    expect(runtime.pool.closed).toBe(true);
    expect(runtime.service.isLive()).toBe(false);
  });

  it("says clearly when the CUDA backend finds no GPU, and gives the interpreters back", async () => {
    await expect(
      createRuntime({ repository: repo, interpreters: 1, python: "/usr/bin/python3", backend: "cuda" }),
    ).rejects.toMatchObject({ code: "BACKEND_UNAVAILABLE" });
  });

  it("refuses an unknown backend name", async () => {
    await expect(createRuntime({ repository: repo, backend: "tpu" as never })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });
});
