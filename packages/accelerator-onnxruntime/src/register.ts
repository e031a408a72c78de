import { TOKENS } from "@coil/core";
import type { DependencyContainer } from "tsyringe";

import { OnnxRuntimeAccelerator, type OnnxRuntimeAcceleratorOptions } from "./onnxruntime-accelerator.js";

/** Registers the ONNX Runtime accelerator among the container's TOKENS.Accelerator. */
export function registerOnnxRuntimeAccelerator(container: DependencyContainer, options: OnnxRuntimeAcceleratorOptions = {}): DependencyContainer {
  container.register(TOKENS.Accelerator, { useValue: new OnnxRuntimeAccelerator(options) });
  return container;
}
