import { availableParallelism } from "node:os";

import { CoilError } from "@coil/errors";
import { GLIBC_TUNABLE, interpreterBudget, interpreterStats, MAX_INTERPRETERS } from "@coil/native";

import type { InterpreterPool } from "./pool.js";

/** How one model is given interpreters (coil.json "models": { "<name>": { ... } }). */
export interface ModelGroupSettings {
  /** Interpreters of its own (Triton's instance group count). */
  instances?: number;
  /** Share the interpreters of this named group with the other models naming it:
   * only for models that trust each other (they see each other's Python). */
  group?: string;
}

export interface ModelGroupsOptions {
  /** Makes a group's pool of `size` interpreters, prepared by the backend. */
  createPool(size: number): Promise<InterpreterPool>;
  /** Interpreters per group where its models name none. Default: defaultInstances()
   * over the groups planned with plan(). */
  instances?: number;
  /** Per model name. */
  models?: Readonly<Record<string, ModelGroupSettings>>;
}

/** What a group looks like now, for metrics and logs. */
export interface GroupInfo {
  /** The group's name: the model's own name, or the shared group's. */
  name: string;
  shared: boolean;
  size: number;
  /** The models holding it (one entry per version loaded). */
  models: string[];
  /** Undefined while its interpreters are being prepared. */
  pool: InterpreterPool | undefined;
}

interface Group {
  key: string;
  name: string;
  shared: boolean;
  size: number;
  holders: string[];
  creating: Promise<InterpreterPool>;
  pool: InterpreterPool | undefined;
}

/**
 * Interpreters per model, as Triton's instance groups: each model gets a pool of its
 * own (so one model's Python -- patched modules, threads, gc-reachable objects -- never
 * meets another's), unless models are told to share a named group. A group's pool is
 * made when its first model loads and closed -- its interpreters reset and returned to
 * the process -- when its last model unloads.
 */
export class ModelGroups {
  readonly #options: ModelGroupsOptions;
  readonly #groups = new Map<string, Group>();
  /** Pools closing: their interpreters return to the process only once reset. */
  readonly #closing = new Set<Promise<void>>();
  /** Group creation, one at a time, so that each sees the budget the last one left. */
  #serial: Promise<unknown> = Promise.resolve();
  #instances: number | undefined;
  #closed = false;

  constructor(options: ModelGroupsOptions) {
    if (options.instances !== undefined) checkInstances(options.instances, "instances");
    for (const [model, settings] of Object.entries(options.models ?? {})) {
      if (settings.instances !== undefined) checkInstances(settings.instances, `models.${model}.instances`);
      if (settings.group !== undefined && (typeof settings.group !== "string" || settings.group === "")) {
        throw new CoilError("INVALID_ARGUMENT", `models.${model}.group must be a non-empty string`);
      }
    }
    this.#options = options;
    this.#instances = options.instances;
  }

  /** Every model in one pool that is already made (the pre-instance-group behaviour,
   * for callers that built a pool themselves). The pool closes with close(). */
  static sharing(pool: InterpreterPool): ModelGroups {
    const groups = new ModelGroups({ createPool: () => Promise.resolve(pool), instances: pool.size });
    groups.#sharedPool = pool;
    return groups;
  }

  #sharedPool: InterpreterPool | undefined;

  /** Sets the default instances from the models about to load (unless given). */
  plan(models: readonly string[]): void {
    if (this.#options.instances !== undefined || this.#sharedPool) return;
    const groups = new Set(models.map((m) => this.#keyOf(m)));
    this.#instances = defaultInstances(groups.size);
  }

  /** The interpreters a group gets where none is configured. */
  get defaultInstances(): number {
    return this.#instances ?? defaultInstances(1);
  }

  /** The name of the group `model` runs in. */
  groupOf(model: string): string {
    if (this.#sharedPool) return "shared";
    return this.#options.models?.[model]?.group ?? model;
  }

  /** The pool `model` runs in, made (and prepared) if its group has none yet; held
   * until release(). Fails with INTERPRETER_LIMIT when the process's budget is spent. */
  acquire(model: string): Promise<InterpreterPool> {
    if (this.#closed) return Promise.reject(new CoilError("CLOSED", "the runtime is closed"));
    const acquired = this.#serial.then(() => this.#acquire(model));
    this.#serial = acquired.catch(() => undefined);
    return acquired;
  }

  async #acquire(model: string): Promise<InterpreterPool> {
    const key = this.#keyOf(model);
    let group = this.#groups.get(key);
    if (!group) {
      // Interpreters of pools still closing become free once reset.
      await Promise.all(this.#closing);
      const size = this.#sizeOf(model);
      if (!this.#sharedPool) this.#checkBudget(model, size);
      const name = this.groupOf(model);
      const created: Group = {
        key,
        name,
        shared: this.#options.models?.[model]?.group !== undefined || this.#sharedPool !== undefined,
        size,
        holders: [],
        creating: this.#options.createPool(size),
        pool: undefined,
      };
      group = created;
      this.#groups.set(key, group);
      try {
        group.pool = await group.creating;
      } catch (error) {
        if (this.#groups.get(key) === created) this.#groups.delete(key);
        throw error;
      }
    }
    group.holders.push(model);
    return group.pool!;
  }

  /** Gives back one hold of `model` (acquired earlier); the group's last hold closes
   * its pool: calls finish, then its interpreters go back to the process, reset. */
  async release(model: string): Promise<void> {
    const group = this.#groups.get(this.#keyOf(model));
    if (!group) return;
    const at = group.holders.indexOf(model);
    if (at >= 0) group.holders.splice(at, 1);
    if (group.holders.length > 0 || this.#sharedPool) return;
    this.#groups.delete(group.key);
    await this.#closePool(group.pool!);
  }

  /** The groups, with their models and pools. */
  list(): GroupInfo[] {
    return [...this.#groups.values()].map((g) => ({ name: g.name, shared: g.shared, size: g.size, models: [...g.holders], pool: g.pool }));
  }

  /** Closes every pool left (models should be released first). */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#serial;
    const pools = [...this.#groups.values()].map((g) => g.pool).filter((p): p is InterpreterPool => p !== undefined);
    this.#groups.clear();
    if (this.#sharedPool && !pools.includes(this.#sharedPool)) pools.push(this.#sharedPool);
    await Promise.all(pools.map((p) => this.#closePool(p)));
    await Promise.all(this.#closing);
  }

  #closePool(pool: InterpreterPool): Promise<void> {
    const closing = pool.close();
    this.#closing.add(closing);
    return closing.finally(() => this.#closing.delete(closing));
  }

  #keyOf(model: string): string {
    if (this.#sharedPool) return "shared";
    const group = this.#options.models?.[model]?.group;
    return group !== undefined ? `group:${group}` : `model:${model}`;
  }

  /** A model's own setting; in a shared group, the most any of its configured models asks. */
  #sizeOf(model: string): number {
    const settings = this.#options.models ?? {};
    const group = settings[model]?.group;
    if (group === undefined) return settings[model]?.instances ?? this.defaultInstances;
    const asked = Object.values(settings)
      .filter((s) => s.group === group && s.instances !== undefined)
      .map((s) => s.instances!);
    return asked.length > 0 ? Math.max(...asked) : this.defaultInstances;
  }

  #checkBudget(model: string, size: number): void {
    const { created, idle, budget } = interpreterStats();
    const free = budget - created + idle;
    if (size <= free) return;
    const held = [...this.#groups.values()].map((g) => `${g.name}${g.shared ? ` (shared by ${[...new Set(g.holders)].join(", ")})` : ""}: ${g.size}`);
    const tunable = budget < MAX_INTERPRETERS ? ` Starting the process with GLIBC_TUNABLES=${GLIBC_TUNABLE} raises the budget to ${MAX_INTERPRETERS}.` : "";
    throw new CoilError(
      "INTERPRETER_LIMIT",
      `model ${model} needs ${size} interpreter(s) of its own, and ${Math.max(0, free)} of this process's budget of ${budget} are free ` +
        `(held: ${held.length > 0 ? held.join(", ") : "none"}; the rest are retired or used elsewhere). ` +
        `Give models fewer with "instances" (coil.json "models": {"${model}": {"instances": 1}}, or --instances), ` +
        `let models that trust each other share interpreters with "group": "<name>" on each, or unload a model.${tunable}`,
      { details: { model, asked: size, free: Math.max(0, free), budget } },
    );
  }
}

/**
 * The interpreters each of `groups` groups gets by default: the process's budget split
 * evenly between them, at most one per core (more interpreters than cores only queue
 * for the CPUs), at least one.
 */
export function defaultInstances(groups: number, cores = availableParallelism(), budget = interpreterBudget()): number {
  return Math.max(1, Math.min(cores, Math.floor(budget / Math.max(1, groups))));
}

function checkInstances(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1 || value > MAX_INTERPRETERS) {
    throw new CoilError("INVALID_ARGUMENT", `${name} must be an integer from 1 to ${MAX_INTERPRETERS}, got ${value}`);
  }
}
