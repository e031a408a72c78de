/** @coil/accelerator-onnxruntime — the ONNX Runtime accelerator plugin. */
import "reflect-metadata";

export {
  defaultOnnxCacheDir,
  ONNXRUNTIME_ACCELERATOR_OPTIONS,
  ONNXRUNTIME_TOLERANCE,
  OnnxRuntimeAccelerator,
  type OnnxRuntimeAcceleratorOptions,
} from "./onnxruntime-accelerator.js";
/** The plugin (default export): registers it into a runtime's container. */
export { registerOnnxRuntimeAccelerator, registerOnnxRuntimeAccelerator as default } from "./register.js";
