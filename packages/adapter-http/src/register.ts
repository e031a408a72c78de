import { TOKENS, type InferenceService } from "@coil/core";
import { Lifecycle, type DependencyContainer } from "tsyringe";

import {
  HTTP_ADAPTER_OPTIONS,
  HttpAdapter,
  INFERENCE_SERVICE,
  validateHttpAdapterOptions,
  type HttpAdapterOptions,
} from "./http-adapter.js";

/**
 * Registers the HTTP adapter under TOKENS.Adapter (one instance per container; a
 * runtime starts every `container.resolveAll(TOKENS.Adapter)`). It serves the
 * container's INFERENCE_SERVICE: register the runtime's service there, or pass one
 * as `service` here.
 */
export function registerHttpAdapter(
  container: DependencyContainer,
  options: HttpAdapterOptions = {},
  service?: InferenceService,
): DependencyContainer {
  validateHttpAdapterOptions(options);
  if (service !== undefined) container.register(INFERENCE_SERVICE, { useValue: service });
  container.register(HTTP_ADAPTER_OPTIONS, { useValue: options });
  container.register(TOKENS.Adapter, { useClass: HttpAdapter }, { lifecycle: Lifecycle.ContainerScoped });
  return container;
}
