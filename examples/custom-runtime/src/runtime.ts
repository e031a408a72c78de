import { createCoilContainer, createPoolFromContainer, TOKENS, type InterpreterPool, type PoolOptions } from "@coil/core";
import type { DependencyContainer } from "tsyringe";

import { RoundRobinScheduler } from "./round-robin-scheduler.js";
import { registerTracingBackend, type TracingBackendOptions } from "./tracing-backend.js";

export interface CustomRuntimeOptions extends PoolOptions {
  tracing?: TracingBackendOptions;
  /** Registers something else before the pool is built: another backend, a
   * scheduler... Later registrations win. */
  configure?: (container: DependencyContainer) => void;
}

export interface CustomRuntime {
  container: DependencyContainer;
  pool: InterpreterPool;
  scheduler: RoundRobinScheduler;
  close(): Promise<void>;
}

/**
 * A custom runtime: core's container with this example's backend and scheduler
 * swapped in for the defaults. The default assembly (@coil/runtime) does the same
 * with the CPU backend and core's least-loaded scheduler.
 */
export async function createCustomRuntime(options: CustomRuntimeOptions = {}): Promise<CustomRuntime> {
  const { tracing, configure, ...poolOptions } = options;
  const container = createCoilContainer(poolOptions);
  registerTracingBackend(container, tracing);
  const scheduler = new RoundRobinScheduler();
  container.register(TOKENS.Scheduler, { useValue: scheduler });
  configure?.(container);
  const pool = await createPoolFromContainer(container);
  return { container, pool, scheduler, close: () => pool.close() };
}
