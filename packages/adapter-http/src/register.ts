import { TOKENS } from "@coil/core";
import { Lifecycle, type DependencyContainer } from "tsyringe";

import { ACCESS_CONTROL, OPEN_ACCESS } from "@coil/core";
import { HTTP_ADAPTER_OPTIONS, HttpAdapter, validateHttpAdapterOptions, type HttpAdapterOptions } from "./http-adapter.js";

/** The plugin: registers the HTTP adapter under TOKENS.Adapter (one instance per
 * container). A runtime starts every adapter its container holds, each serving the
 * container's TOKENS.InferenceService, asking the container's ACCESS_CONTROL who may
 * do what (open to all unless a runtime registers its policy). */
export function registerHttpAdapter(container: DependencyContainer, options: HttpAdapterOptions = {}): DependencyContainer {
  validateHttpAdapterOptions(options);
  container.register(HTTP_ADAPTER_OPTIONS, { useValue: options });
  if (!container.isRegistered(ACCESS_CONTROL, true)) container.register(ACCESS_CONTROL, { useValue: OPEN_ACCESS });
  container.register(TOKENS.Adapter, { useClass: HttpAdapter }, { lifecycle: Lifecycle.ContainerScoped });
  return container;
}
