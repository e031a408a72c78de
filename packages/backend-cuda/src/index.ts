/** @coil/backend-cuda — the CUDA backend plugin: each interpreter on an NVIDIA GPU, with its own stream. */
import "reflect-metadata";

export {
  CUDA_BACKEND_OPTIONS,
  CUDA_OUT_OF_MEMORY_TYPE,
  CUDA_UNAVAILABLE_TYPE,
  CudaBackend,
  isCudaOutOfMemory,
  validateCudaBackendOptions,
  type CudaBackendInfo,
  type CudaBackendOptions,
  type CudaProbe,
} from "./cuda-backend.js";
export { planPlacement, validateDevices, validatePlacement, type Placement, type PlacementFunction } from "./placement.js";
/** The plugin (default export): registers it into a runtime\'s container. */
export { registerCudaBackend, registerCudaBackend as default } from "./register.js";
