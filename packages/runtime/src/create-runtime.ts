import "reflect-metadata";

import {
  createCoilContainer,
  createPoolFromContainer,
  TOKENS,
  type Adapter,
  type Backend,
  type InferenceService,
  type InterpreterPool,
  type LoadArchiveOptions,
  type ModelQueueOptions,
} from "@coil/core";
import { registerCpuBackend } from "@coil/backend-cpu";
import { CoilError } from "@coil/errors";
import type { DependencyContainer } from "tsyringe";

import { ServingRuntime } from "./serving-runtime.js";

export interface RuntimeConfig {
  /** The model repository folder. */
  repository: string;
  /** Interpreters in the pool (default: the cores, within the process's budget). */
  interpreters?: number;
  /** The Python executable (default: discovery). */
  python?: string;
  /** "cpu" (default), "cuda", or a Backend of your own. */
  backend?: "cpu" | "cuda" | Backend;
  queue?: ModelQueueOptions;
  archive?: Pick<LoadArchiveOptions, "verifyHashes" | "requireSignature" | "publicKey">;
  /** Protocol adapters to start, each built over the runtime's InferenceService. */
  adapters?: ((service: InferenceService) => Adapter)[];
  /** A container to assemble in (its registrations override the defaults). */
  container?: DependencyContainer;
}

export interface Runtime {
  readonly service: ServingRuntime;
  readonly pool: InterpreterPool;
  readonly adapters: readonly Adapter[];
  /** Stops the adapters (they finish requests in flight), drains the models, returns the interpreters. */
  close(): Promise<void>;
}

/**
 * The default assembly: a pool with the chosen backend (through the DI container),
 * the repository's models served by a ServingRuntime, and the adapters started.
 */
export async function createRuntime(config: RuntimeConfig): Promise<Runtime> {
  const container = createCoilContainer(
    {
      ...(config.interpreters !== undefined && { size: config.interpreters }),
      ...(config.python !== undefined && { python: config.python }),
    },
    config.container,
  );
  await registerBackend(container, config.backend ?? "cpu");
  const pool = await createPoolFromContainer(container);
  const service = new ServingRuntime({
    pool,
    repository: config.repository,
    ...(config.queue && { queue: config.queue }),
    ...(config.archive && { archive: config.archive }),
  });
  const adapters: Adapter[] = [];
  try {
    await service.start();
    for (const make of config.adapters ?? []) {
      const adapter = make(service);
      await adapter.start();
      adapters.push(adapter);
    }
  } catch (error) {
    for (const adapter of adapters.reverse()) await adapter.stop().catch(() => undefined);
    await service.close();
    throw error;
  }
  let closing: Promise<void> | undefined;
  return {
    service,
    pool,
    adapters,
    close: () =>
      (closing ??= (async () => {
        for (const adapter of [...adapters].reverse()) await adapter.stop();
        await service.close();
      })()),
  };
}

async function registerBackend(container: DependencyContainer, backend: "cpu" | "cuda" | Backend): Promise<void> {
  if (container.isRegistered(TOKENS.Backend)) return; // the caller's own
  if (typeof backend === "object") {
    container.register(TOKENS.Backend, { useValue: backend });
  } else if (backend === "cpu") {
    registerCpuBackend(container);
  } else if (backend === "cuda") {
    let cuda: { registerCudaBackend(container: DependencyContainer): unknown };
    try {
      cuda = (await import("@coil/backend-cuda" as string)) as typeof cuda;
    } catch (cause) {
      throw new CoilError("BACKEND_UNAVAILABLE", "backend \"cuda\" needs the @coil/backend-cuda package: npm install @coil/backend-cuda", { cause });
    }
    cuda.registerCudaBackend(container);
  } else {
    throw new CoilError("INVALID_ARGUMENT", `unknown backend "${String(backend)}": use "cpu", "cuda" or a Backend object`);
  }
}
