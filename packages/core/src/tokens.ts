import type { InjectionToken } from "tsyringe";

import type { Accelerator } from "./accelerator.js";
import type { Adapter, Backend, Scheduler } from "./contracts.js";
import type { PoolOptions } from "./pool.js";
import type { InferenceService } from "./serving.js";

/** Dependency-injection tokens. Register implementations against these; every
 * constructor parameter names its token with @inject (no decorator metadata). */
export const TOKENS = {
  Backend: Symbol.for("coil.Backend") as InjectionToken<Backend>,
  Scheduler: Symbol.for("coil.Scheduler") as InjectionToken<Scheduler>,
  PoolOptions: Symbol.for("coil.PoolOptions") as InjectionToken<PoolOptions>,
  Adapter: Symbol.for("coil.Adapter") as InjectionToken<Adapter>,
  /** Accelerators models may name; several may be registered (resolveAll). */
  Accelerator: Symbol.for("coil.Accelerator") as InjectionToken<Accelerator>,
  /** What adapters serve: the runtime's InferenceService. */
  InferenceService: Symbol.for("coil.InferenceService") as InjectionToken<InferenceService>,
} as const;
