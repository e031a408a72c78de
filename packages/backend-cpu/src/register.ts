import { TOKENS } from "@coil/core";
import type { DependencyContainer } from "tsyringe";

import { CPU_BACKEND_OPTIONS, CpuBackend, type CpuBackendOptions } from "./cpu-backend.js";

/** Registers the CPU backend as the container's TOKENS.Backend. */
export function registerCpuBackend(container: DependencyContainer, options: CpuBackendOptions = {}): DependencyContainer {
  container.register(CPU_BACKEND_OPTIONS, { useValue: options });
  container.register(TOKENS.Backend, { useClass: CpuBackend });
  return container;
}
