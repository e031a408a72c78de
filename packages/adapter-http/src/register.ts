import { TOKENS } from "@coil/core";
import { Lifecycle, type DependencyContainer } from "tsyringe";

import { HTTP_ADAPTER_OPTIONS, HttpAdapter, validateHttpAdapterOptions, type HttpAdapterOptions } from "./http-adapter.js";

/** The plugin: registers the HTTP adapter under TOKENS.Adapter (one instance per
 * container). A runtime starts every adapter its container holds, each serving the
 * container's TOKENS.InferenceService. */
export function registerHttpAdapter(container: DependencyContainer, options: HttpAdapterOptions = {}): DependencyContainer {
  validateHttpAdapterOptions(options);
  container.register(HTTP_ADAPTER_OPTIONS, { useValue: options });
  container.register(TOKENS.Adapter, { useClass: HttpAdapter }, { lifecycle: Lifecycle.ContainerScoped });
  return container;
}
