/** @coil/backend-cpu — the CPU backend plugin: torch on the CPU cores, shared by the pool's interpreters. */
import "reflect-metadata";

export { CPU_BACKEND_OPTIONS, CpuBackend, type CpuBackendOptions } from "./cpu-backend.js";
export { registerCpuBackend } from "./register.js";
