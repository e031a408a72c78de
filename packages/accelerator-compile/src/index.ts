/** @coil/accelerator-compile — the torch.compile accelerator plugin. */
import "reflect-metadata";

export { COMPILE_ACCELERATOR_OPTIONS, COMPILE_TOLERANCE, CompileAccelerator, type CompileAcceleratorOptions } from "./compile-accelerator.js";
/** The plugin (default export): registers it into a runtime's container. */
export { registerCompileAccelerator, registerCompileAccelerator as default } from "./register.js";
