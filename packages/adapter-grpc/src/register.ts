import { TOKENS } from "@coil/core";
import { Lifecycle, type DependencyContainer } from "tsyringe";

import { GRPC_ADAPTER_OPTIONS, GrpcAdapter, validateGrpcAdapterOptions, type GrpcAdapterOptions } from "./grpc-adapter.js";

/** The plugin: registers the gRPC adapter under TOKENS.Adapter (one instance per
 * container). A runtime starts every adapter its container holds, each serving the
 * container's TOKENS.InferenceService. */
export function registerGrpcAdapter(container: DependencyContainer, options: GrpcAdapterOptions = {}): DependencyContainer {
  validateGrpcAdapterOptions(options);
  container.register(GRPC_ADAPTER_OPTIONS, { useValue: options });
  container.register(TOKENS.Adapter, { useClass: GrpcAdapter }, { lifecycle: Lifecycle.ContainerScoped });
  return container;
}
