import "reflect-metadata";

import { container as rootContainer, inject, injectable, type DependencyContainer } from "tsyringe";

import { CoilError } from "@coil/errors";

import type { Accelerator } from "./accelerator.js";
import type { Backend, Scheduler } from "./contracts.js";
import { InterpreterPool, type PoolOptions } from "./pool.js";
import { LeastLoadedScheduler } from "./scheduler.js";
import { TOKENS } from "./tokens.js";

/** Builds the pool from whatever backend, scheduler and options the container holds. */
@injectable()
export class PoolFactory {
  constructor(
    @inject(TOKENS.Backend) private readonly backend: Backend,
    @inject(TOKENS.Scheduler) private readonly scheduler: Scheduler,
    @inject(TOKENS.PoolOptions) private readonly options: PoolOptions,
  ) {}

  /** A pool, with the accelerators given (the container's TOKENS.Accelerator
   * registrations); `overrides` over the container's pool options (a group's size). */
  create(accelerators: readonly Accelerator[] = [], overrides: PoolOptions = {}): Promise<InterpreterPool> {
    return InterpreterPool.create({ ...this.options, ...overrides, backend: this.backend, scheduler: this.scheduler, accelerators });
  }
}

/**
 * A child container with core's defaults: the least-loaded scheduler and the given
 * pool options. A backend plugin registers TOKENS.Backend into it (e.g.
 * `registerCpuBackend(container)`); anything else can be overridden the same way.
 */
export function createCoilContainer(options: PoolOptions = {}, parent: DependencyContainer = rootContainer): DependencyContainer {
  const container = parent.createChildContainer();
  container.register(TOKENS.PoolOptions, { useValue: options });
  container.register(TOKENS.Scheduler, { useFactory: () => new LeastLoadedScheduler() });
  return container;
}

/** Resolves the pool a container describes, with every accelerator registered in it;
 * `overrides` over its pool options (e.g. one model group's size). */
export async function createPoolFromContainer(container: DependencyContainer, overrides: PoolOptions = {}): Promise<InterpreterPool> {
  if (!container.isRegistered(TOKENS.Backend, true)) {
    throw new CoilError("BACKEND_UNAVAILABLE", "no backend registered: add a backend plugin (e.g. @coil/backend-cpu) or register one under TOKENS.Backend");
  }
  const accelerators = container.isRegistered(TOKENS.Accelerator, true) ? container.resolveAll(TOKENS.Accelerator) : [];
  return container.resolve(PoolFactory).create(accelerators, overrides);
}
