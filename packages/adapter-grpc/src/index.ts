/**
 * @coil/adapter-grpc — the Open Inference Protocol (KServe v2) over gRPC,
 * `inference.GRPCInferenceService` as Triton serves it, for any InferenceService.
 */
import "reflect-metadata";

export { ACCESS_CONTROL, OPEN_ACCESS, type AccessControl, type AccessKind, type AccessRequest } from "@coil/core";
export { GRPC_ADAPTER_OPTIONS, GrpcAdapter, validateGrpcAdapterOptions, type GrpcAdapterOptions } from "./grpc-adapter.js";
export { inferenceService, inferenceServiceDefinition, PROTO_LOADER_OPTIONS, PROTO_PATH } from "./proto.js";
/** The plugin (default export): registers it into a runtime\'s container. */
export { registerGrpcAdapter, registerGrpcAdapter as default } from "./register.js";
export { grpcStatusFor } from "./status.js";
export type * from "./messages.js";
