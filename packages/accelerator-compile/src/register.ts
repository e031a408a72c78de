import { TOKENS } from "@coil/core";
import type { DependencyContainer } from "tsyringe";

import { COMPILE_ACCELERATOR_OPTIONS, CompileAccelerator, type CompileAcceleratorOptions } from "./compile-accelerator.js";

/** Registers the compile accelerator among the container's TOKENS.Accelerator. */
export function registerCompileAccelerator(container: DependencyContainer, options: CompileAcceleratorOptions = {}): DependencyContainer {
  container.register(TOKENS.Accelerator, { useValue: new CompileAccelerator(options) });
  return container;
}
