import { GrpcAdapter } from "@coil/adapter-grpc";
import { createHttpAdapter, type HttpAdapter } from "@coil/adapter-http";
import type { InferenceService } from "@coil/core";
import { pino, type Logger } from "pino";

import { createRuntime, type Runtime, type RuntimeConfig } from "./create-runtime.js";

export interface ServeOptions extends Omit<RuntimeConfig, "adapters"> {
  host?: string;
  /** 0 picks a free port; null turns the protocol off. Defaults 8000 and 8001, as Triton. */
  httpPort?: number | null;
  grpcPort?: number | null;
  logger?: Logger;
}

export interface Server {
  runtime: Runtime;
  httpPort: number | undefined;
  grpcPort: number | undefined;
  /** Stops accepting, finishes requests in flight, unloads the models. */
  shutdown(): Promise<void>;
}

/** `coil serve`: the default runtime with the Open Inference Protocol over HTTP and gRPC. */
export async function serve(options: ServeOptions): Promise<Server> {
  const log = options.logger ?? pino({ name: "coil" });
  const { host = "0.0.0.0", httpPort = 8000, grpcPort = 8001, logger: _ignored, ...config } = options;
  let http: HttpAdapter | undefined;
  let grpc: GrpcAdapter | undefined;
  const started = performance.now();
  const runtime = await createRuntime({
    ...config,
    adapters: [
      ...(httpPort !== null ? [(service: InferenceService) => (http = createHttpAdapter(service, { host, port: httpPort }))] : []),
      ...(grpcPort !== null ? [(service: InferenceService) => (grpc = new GrpcAdapter({ service, host, port: grpcPort }))] : []),
    ],
  });
  for (const entry of runtime.service.modelIndex()) {
    if (entry.state === "READY") log.info({ model: entry.name, version: entry.version }, "model ready");
    else log.warn({ model: entry.name, version: entry.version, reason: entry.reason }, "model unavailable");
  }
  const info = runtime.pool.backendInfo[0];
  log.info(
    {
      http: http?.port,
      grpc: grpc?.port,
      interpreters: runtime.pool.size,
      backend: runtime.pool.backend.name,
      python: info?.python,
      torch: info?.torch,
      startupMs: Math.round(performance.now() - started),
      nodeFlags: process.execArgv,
    },
    "serving",
  );
  return {
    runtime,
    httpPort: http?.port,
    grpcPort: grpc?.port,
    shutdown: async () => {
      log.info("shutting down: finishing requests in flight");
      await runtime.close();
      log.info("stopped");
    },
  };
}
