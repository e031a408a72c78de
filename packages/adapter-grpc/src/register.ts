import { TOKENS } from "@coil/core";
import { Lifecycle, type DependencyContainer } from "tsyringe";

import { ACCESS_CONTROL, OPEN_ACCESS } from "@coil/core";
import { GRPC_ADAPTER_OPTIONS, GrpcAdapter, validateGrpcAdapterOptions, type GrpcAdapterOptions } from "./grpc-adapter.js";

/** The plugin: registers the gRPC adapter under TOKENS.Adapter (one instance per
 * container). A runtime starts every adapter its container holds, each serving the
 * container's TOKENS.InferenceService. */
export function registerGrpcAdapter(container: DependencyContainer, options: GrpcAdapterOptions = {}): DependencyContainer {
  validateGrpcAdapterOptions(options);
  container.register(GRPC_ADAPTER_OPTIONS, { useValue: options });
  if (!container.isRegistered(ACCESS_CONTROL, true)) container.register(ACCESS_CONTROL, { useValue: OPEN_ACCESS });
  container.register(TOKENS.Adapter, { useClass: GrpcAdapter }, { lifecycle: Lifecycle.ContainerScoped });
  return container;
}
