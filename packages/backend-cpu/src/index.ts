/** @coil/backend-cpu — the CPU backend plugin: torch on the CPU cores, shared by the pool's interpreters. */
import "reflect-metadata";

export { CPU_BACKEND_OPTIONS, CpuBackend, type CpuBackendOptions } from "./cpu-backend.js";
/** The plugin (default export): registers it into a runtime\'s container. */
export { registerCpuBackend, registerCpuBackend as default } from "./register.js";
