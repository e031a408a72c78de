import "reflect-metadata";

import {
  createCoilContainer,
  Tensor,
  TOKENS,
  type AccessControl,
  type AccessRequest,
  type InferenceRequest,
  type InferenceResponse,
  type InferenceService,
} from "@coil/core";
import { CoilError } from "@coil/errors";
import { credentials, Metadata, status, type Client, type ServiceError } from "@grpc/grpc-js";
import { connect } from "node:http2";

import { afterEach, describe, expect, it } from "vitest";

import { GrpcAdapter } from "./grpc-adapter.js";
import { inferenceService } from "./proto.js";
import { registerGrpcAdapter } from "./register.js";
import { grpcStatusFor } from "./status.js";

/** An InferenceService whose infer does what the test says. */
function stubService(infer: (request: InferenceRequest) => Promise<InferenceResponse>): InferenceService {
  return {
    serverMetadata: () => ({ name: "stub", version: "0", extensions: [] }),
    isLive: () => true,
    isReady: () => true,
    modelIndex: () => [],
    model: () => {
      throw new CoilError("MODEL_NOT_FOUND", "no models");
    },
    isModelReady: () => true,
    infer: (_name, _version, request) => infer(request),
    loadModel: async () => undefined,
    unloadModel: async () => undefined,
    metrics: () => "",
  };
}

const echo = async (request: InferenceRequest): Promise<InferenceResponse> => ({ modelName: "m", modelVersion: "1", outputs: request.inputs });

const started: { adapter: GrpcAdapter; client: Client }[] = [];

async function serve(service: InferenceService, options: { shutdownTimeoutMs?: number } = {}, access?: AccessControl) {
  const adapter = new GrpcAdapter(service, { port: 0, ...options }, access);
  await adapter.start();
  const client = new (inferenceService())(adapter.address!, credentials.createInsecure());
  started.push({ adapter, client });
  return { adapter, client };
}

afterEach(async () => {
  for (const { adapter, client } of started.splice(0)) {
    client.close();
    await adapter.stop();
  }
});

function modelInfer(client: Client, options: { deadline?: number } = {}) {
  const request = { model_name: "m", inputs: [{ name: "x", datatype: "FP32", shape: ["1"], contents: { fp32_contents: [1] } }] };
  let cancel!: () => void;
  const result = new Promise<unknown>((resolve, reject) => {
    const call = (client as unknown as Record<string, Function>).ModelInfer!.call(client, request, options, (error: ServiceError | null, response: unknown) =>
      error ? reject(error) : resolve(response),
    ) as { cancel(): void };
    cancel = () => call.cancel();
  });
  return { result, cancel: () => cancel() };
}

describe("GrpcAdapter", () => {
  it("registers in a container, starts on an ephemeral port, stops idempotently", async () => {
    const container = registerGrpcAdapter(createCoilContainer(), { port: 0 });
    container.register(TOKENS.InferenceService, { useValue: stubService(echo) });
    const adapter = container.resolve(TOKENS.Adapter) as GrpcAdapter;
    expect(adapter).toBeInstanceOf(GrpcAdapter);
    expect(adapter.name).toBe("grpc");
    expect(container.resolveAll(TOKENS.Adapter)).toEqual([adapter]);
    expect(adapter.address).toBeUndefined();
    await adapter.start();
    await adapter.start(); // idempotent
    expect(adapter.port).toBeGreaterThan(0);
    const client = new (inferenceService())(adapter.address!, credentials.createInsecure());
    const live = await new Promise((resolve, reject) =>
      (client as unknown as Record<string, Function>).ServerLive!.call(client, {}, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    expect(live).toEqual({ live: true });
    client.close();
    await adapter.stop();
    expect(adapter.port).toBeUndefined();
    await adapter.stop();
  });

  it("refuses bad options with INVALID_ARGUMENT", () => {
    const service = stubService(echo);
    for (const options of [{ port: 70000 }, { port: 1.5 }, { maxMessageBytes: 10 }, { shutdownTimeoutMs: -1 }]) {
      expect(() => new GrpcAdapter(service, options), JSON.stringify(options)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    }
    expect(() => new GrpcAdapter(undefined as never)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => registerGrpcAdapter(createCoilContainer(), { port: -1 })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("maps CoilError codes to gRPC statuses", async () => {
    const expected: [string, status][] = [
      ["INVALID_ARGUMENT", status.INVALID_ARGUMENT],
      ["SHAPE_MISMATCH", status.INVALID_ARGUMENT],
      ["UNSUPPORTED_DTYPE", status.INVALID_ARGUMENT],
      ["MODEL_NOT_FOUND", status.NOT_FOUND],
      ["QUEUE_FULL", status.RESOURCE_EXHAUSTED],
      ["MODEL_NOT_READY", status.UNAVAILABLE],
      ["CLOSED", status.UNAVAILABLE],
      ["DEADLINE_EXCEEDED", status.DEADLINE_EXCEEDED],
      ["UNAUTHENTICATED", status.UNAUTHENTICATED],
      ["PERMISSION_DENIED", status.PERMISSION_DENIED],
      ["RESPONSE_TOO_LARGE", status.RESOURCE_EXHAUSTED],
      ["PYTHON_ERROR", status.INTERNAL],
      ["INTERNAL", status.INTERNAL],
    ];
    let next: unknown;
    const { client } = await serve(stubService(async () => Promise.reject(next)));
    for (const [code, grpc] of expected) {
      expect(grpcStatusFor(code)).toBe(grpc);
      next = new CoilError(code as never, `failed with ${code}`);
      await expect(modelInfer(client).result, code).rejects.toMatchObject({ code: grpc, details: `failed with ${code}` });
    }
    next = new TypeError("a bug");
    await expect(modelInfer(client).result).rejects.toMatchObject({ code: status.INTERNAL, details: "a bug" });
  });

  it("serves Triton's repository RPCs: the index (ready only, if asked), load and unload", async () => {
    const asked: string[] = [];
    const service: InferenceService = {
      ...stubService(echo),
      modelIndex: () => [
        { name: "a", version: "1", state: "READY" },
        { name: "b", version: "2", state: "UNAVAILABLE", reason: "unloaded" },
      ],
      loadModel: async (name) => void asked.push(`load ${name}`),
      unloadModel: async (name) => void asked.push(`unload ${name}`),
    };
    const { client } = await serve(service);
    const call = (method: string, request: object) =>
      new Promise<unknown>((resolve, reject) =>
        (client as unknown as Record<string, Function>)[method]!.call(client, request, (error: ServiceError | null, response: unknown) =>
          error ? reject(error) : resolve(response),
        ),
      );
    expect(await call("RepositoryIndex", {})).toEqual({
      models: [
        { name: "a", version: "1", state: "READY", reason: "" },
        { name: "b", version: "2", state: "UNAVAILABLE", reason: "unloaded" },
      ],
    });
    expect(await call("RepositoryIndex", { ready: true })).toEqual({ models: [{ name: "a", version: "1", state: "READY", reason: "" }] });
    expect(await call("RepositoryModelUnload", { model_name: "a" })).toEqual({});
    expect(await call("RepositoryModelLoad", { model_name: "a" })).toEqual({});
    expect(asked).toEqual(["unload a", "load a"]);
  });

  it("passes the client's deadline as timeoutMs, and its cancellation as an aborted signal", async () => {
    const seen: InferenceRequest[] = [];
    let release!: () => void;
    const { client } = await serve(
      stubService(async (request) => {
        seen.push(request);
        if (request.timeoutMs === undefined) {
          // Wait for the cancellation.
          await new Promise<void>((resolve) => request.signal!.addEventListener("abort", () => resolve()));
          release();
          throw request.signal!.reason;
        }
        return echo(request);
      }),
    );
    await modelInfer(client, { deadline: Date.now() + 5_000 }).result;
    expect(seen[0]!.timeoutMs).toBeGreaterThan(3_000);
    expect(seen[0]!.timeoutMs).toBeLessThanOrEqual(5_000);
    expect(seen[0]!.signal?.aborted).toBe(false);

    const released = new Promise<void>((resolve) => (release = resolve));
    const call = modelInfer(client);
    await expect.poll(() => seen.length).toBe(2);
    call.cancel();
    await expect(call.result).rejects.toMatchObject({ code: status.CANCELLED });
    await released;
    expect(seen[1]!.signal!.aborted).toBe(true);
    expect(seen[1]!.signal!.reason).toMatchObject({ code: "CANCELLED" });
  });

  it("refuses a call without the token on its metadata, before the message is sent", async () => {
    const asked: AccessRequest[] = [];
    const tokenOnly: AccessControl = {
      authorize: (request) => {
        asked.push(request);
        if (request.kind !== "health" && request.authorization !== "Bearer t") throw new CoilError("UNAUTHENTICATED", "needs the token");
      },
    };
    const { adapter } = await serve(stubService(echo), {}, tokenOnly);
    // A raw HTTP/2 stream: the call's headers, and no message at all (the stream stays open).
    const session = connect(`http://${adapter.address}`);
    try {
      const stream = session.request({
        ":method": "POST",
        ":path": "/inference.GRPCInferenceService/ModelInfer",
        "content-type": "application/grpc",
        te: "trailers",
      });
      const headers = await new Promise<Record<string, unknown>>((resolve) => stream.once("response", resolve));
      expect(headers).toMatchObject({ "grpc-status": String(status.UNAUTHENTICATED), "grpc-message": "needs%20the%20token" });
      stream.close();
    } finally {
      session.close();
    }
    expect(asked).toEqual([expect.objectContaining({ kind: "inference", beforeBody: true, authorization: undefined, protocol: "grpc" })]);
    // With the token, the handler asks again, with the model, once the message is read.
    asked.length = 0;
    const client = new (inferenceService())(adapter.address!, credentials.createInsecure());
    const metadata = new Metadata();
    metadata.set("authorization", "Bearer t");
    const request = { model_name: "m", inputs: [{ name: "x", datatype: "FP32", shape: ["1"], contents: { fp32_contents: [1] } }] };
    await new Promise((resolve, reject) =>
      (client as unknown as Record<string, Function>).ModelInfer!.call(client, request, metadata, (error: Error | null, response: unknown) => (error ? reject(error) : resolve(response))),
    );
    client.close();
    expect(asked).toEqual([expect.objectContaining({ beforeBody: true }), expect.objectContaining({ kind: "inference", model: "m", authorization: "Bearer t" })]);
    expect(asked[1]).not.toHaveProperty("beforeBody");
  });

  it("stop() lets calls in flight finish", async () => {
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    const { adapter, client } = await serve(
      stubService(async (request) => {
        entered();
        await new Promise((resolve) => setTimeout(resolve, 200));
        return { modelName: "m", modelVersion: "1", outputs: [{ name: "y", tensor: Tensor.from("float32", [1], [7]) }] };
      }),
    );
    const call = modelInfer(client);
    await inFlight;
    await adapter.stop();
    await expect(call.result).resolves.toMatchObject({ model_name: "m", outputs: [{ name: "y", datatype: "FP32" }] });
  });

  it("stop() cancels what is still running after shutdownTimeoutMs", async () => {
    let signal: AbortSignal | undefined;
    const { adapter, client } = await serve(
      stubService(async (request) => {
        signal = request.signal;
        return new Promise<never>(() => undefined); // never answers
      }),
      { shutdownTimeoutMs: 100 },
    );
    const call = modelInfer(client);
    await expect.poll(() => signal).toBeDefined();
    await adapter.stop();
    await expect(call.result).rejects.toMatchObject({ code: expect.any(Number) });
    await expect.poll(() => signal!.aborted).toBe(true);
  });
});
