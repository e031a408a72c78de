import { TOKENS } from "@coil/core";
import type { DependencyContainer } from "tsyringe";

import { CUDA_BACKEND_OPTIONS, CudaBackend, validateCudaBackendOptions, type CudaBackendOptions } from "./cuda-backend.js";

/** Registers the CUDA backend as the container's TOKENS.Backend. Options are checked
 * here, so bad ones throw INVALID_ARGUMENT at registration (tsyringe would wrap the
 * constructor's CoilError in a plain Error at resolution time). */
export function registerCudaBackend(container: DependencyContainer, options: CudaBackendOptions = {}): DependencyContainer {
  validateCudaBackendOptions(options);
  container.register(CUDA_BACKEND_OPTIONS, { useValue: options });
  container.register(TOKENS.Backend, { useClass: CudaBackend });
  return container;
}
