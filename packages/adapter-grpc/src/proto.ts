import { fileURLToPath } from "node:url";

import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { loadSync, type Options } from "@grpc/proto-loader";

/** The Open Inference Protocol .proto this adapter serves (package `inference`). */
export const PROTO_PATH = fileURLToPath(new URL("../proto/grpc_service.proto", import.meta.url));

/** How messages are presented: field names as in the .proto, int64s as decimal
 * strings, bytes as Buffers, absent fields filled with their defaults. */
export const PROTO_LOADER_OPTIONS: Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

let cached: ServiceClientConstructor | undefined;

/** `inference.GRPCInferenceService`, loaded once: a client constructor whose
 * `.service` is the definition a server adds. */
export function inferenceService(): ServiceClientConstructor {
  if (!cached) {
    const loaded = loadPackageDefinition(loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS));
    cached = (loaded.inference as GrpcObject).GRPCInferenceService as ServiceClientConstructor;
  }
  return cached;
}

export function inferenceServiceDefinition(): ServiceDefinition {
  return inferenceService().service;
}
