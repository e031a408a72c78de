import "reflect-metadata";

export { RoundRobinScheduler } from "./round-robin-scheduler.js";
export { createCustomRuntime, type CustomRuntime, type CustomRuntimeOptions } from "./runtime.js";
export { registerTracingBackend, TRACING_BACKEND_OPTIONS, TracingBackend, type Trace, type TracingBackendOptions } from "./tracing-backend.js";
