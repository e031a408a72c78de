import "reflect-metadata";

import {
  createCoilContainer,
  createPoolFromContainer,
  ModelGroups,
  TOKENS,
  type Adapter,
  type InferenceService,
  type Interpreter,
  type InterpreterPool,
  type LoadArchiveOptions,
  type ModelGroupSettings,
  type ModelQueueOptions,
} from "@coil/core";
import { CoilError } from "@coil/errors";
import type { DependencyContainer } from "tsyringe";

import { ACCESS_CONTROL, AccessPolicy, type AccessPolicyOptions } from "./access-policy.js";
import { registerSelectedAccelerators, type AcceleratorSelection } from "./accelerator-selection.js";
import { DEFAULT_PLUGINS, registerPlugins, type PluginEntry } from "./plugins.js";
import { ServingRuntime, type RuntimeLogger } from "./serving-runtime.js";

export interface RuntimeConfig {
  /** The model repository folder. */
  repository: string;
  /** Interpreters each model gets of its own (Triton's instance count), where `models`
   * says none. Default: the process's interpreter budget split evenly between the
   * repository's models, at most one per core, at least one (see defaultInstances). */
  instances?: number;
  /** The older name of `instances`. */
  interpreters?: number;
  /** Per model name: its own `instances`, or a `group` it shares with the other models
   * naming it (trusted models only: they share Python, modules and objects). */
  models?: Readonly<Record<string, ModelGroupSettings>>;
  /** The Python executable (default: discovery). */
  python?: string;
  /**
   * What the runtime is assembled from, in order: a backend, adapters, a scheduler,
   * each a plugin (module name or path, function, or { module, options }). Later
   * registrations win. Default: DEFAULT_PLUGINS (CPU backend, HTTP and gRPC adapters).
   */
  plugins?: readonly PluginEntry[];
  /** Where plugin paths and plugin packages of the user's project resolve from. Default: the current directory. */
  pluginBaseDir?: string;
  queue?: ModelQueueOptions;
  /**
   * The accelerator of every model ("compile"), or per model name with "*" for the
   * others ({ "bert": "onnxruntime", "*": "compile" }); "none" keeps a model eager. An
   * accelerator no plugin registered is loaded as @coil/accelerator-<name>.
   */
  accelerate?: AcceleratorSelection;
  archive?: Pick<LoadArchiveOptions, "verifyHashes" | "requireSignature" | "publicKey">;
  /** Serve symbolic links that lead out of the repository folder (default: skipped, logged). */
  followSymlinks?: boolean;
  /**
   * Who may do what over the adapters: model control ("none", the default: load and
   * unload requests are refused; "explicit"), a bearer token, and whether inference
   * needs it too. Load and unload requests are logged to `logger`. A plugin that
   * registers ACCESS_CONTROL itself replaces this policy.
   */
  access?: Omit<AccessPolicyOptions, "logger">;
  /** Told what the repository skips (coil serve passes its pino logger). */
  logger?: RuntimeLogger;
  /** A container to assemble in (a child of it is used; its registrations are the defaults). */
  container?: DependencyContainer;
  /** What the adapters are given instead of the ServingRuntime itself (a supervised
   * worker's readiness and /metrics cover the whole cluster). */
  wrapService?: (service: ServingRuntime) => InferenceService;
}

export interface Runtime {
  readonly container: DependencyContainer;
  readonly service: ServingRuntime;
  /** Where each model gets its interpreters. */
  readonly groups: ModelGroups;
  /** The pool of the first model group made (for callers serving one model; see groups). */
  readonly pool: InterpreterPool;
  /** Every interpreter the model groups hold now. */
  readonly interpreters: readonly Interpreter[];
  /** Every adapter the plugins registered, started, in registration order. */
  readonly adapters: readonly Adapter[];
  /** Stops the adapters (they finish requests in flight), drains the models, returns the interpreters. */
  close(): Promise<void>;
}

/**
 * Assembles a runtime from plugins in one container: the backend (TOKENS.Backend)
 * builds the pool, the repository's models are served by a ServingRuntime
 * (TOKENS.InferenceService), and every adapter (TOKENS.Adapter) is started over it.
 */
export async function createRuntime(config: RuntimeConfig): Promise<Runtime> {
  const container = createCoilContainer({ ...(config.python !== undefined && { python: config.python }) }, config.container);
  // Before the plugins, so that the adapters find it (and a plugin may replace it).
  container.register(ACCESS_CONTROL, { useValue: new AccessPolicy({ ...config.access, ...(config.logger && { logger: config.logger }) }) });
  await registerPlugins(container, config.plugins ?? DEFAULT_PLUGINS, config.pluginBaseDir);
  await registerSelectedAccelerators(container, config.accelerate, config.pluginBaseDir);
  let first: InterpreterPool | undefined;
  const instances = config.instances ?? config.interpreters;
  const groups = new ModelGroups({
    createPool: async (size) => {
      const pool = await createPoolFromContainer(container, { size });
      first ??= pool;
      return pool;
    },
    ...(instances !== undefined && { instances }),
    ...(config.models && { models: config.models }),
  });
  const service = new ServingRuntime({
    groups,
    repository: config.repository,
    ...(config.queue && { queue: config.queue }),
    ...(config.archive && { archive: config.archive }),
    ...(config.logger && { logger: config.logger }),
    ...(config.accelerate !== undefined && { accelerate: config.accelerate }),
    ...(config.followSymlinks !== undefined && { followSymlinks: config.followSymlinks }),
  });
  container.register(TOKENS.InferenceService, { useValue: config.wrapService?.(service) ?? service });
  const adapters: Adapter[] = [];
  try {
    await service.start();
    const registered = container.isRegistered(TOKENS.Adapter, true) ? container.resolveAll(TOKENS.Adapter) : [];
    for (const adapter of registered) {
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
    container,
    service,
    groups,
    get pool() {
      if (!first) throw new CoilError("MODEL_NOT_READY", "no model has loaded yet, so no model group has interpreters");
      return first;
    },
    get interpreters() {
      return groups.list().flatMap((g) => g.pool?.interpreters ?? []);
    },
    adapters,
    close: () =>
      (closing ??= (async () => {
        for (const adapter of [...adapters].reverse()) await adapter.stop();
        await service.close();
      })()),
  };
}
