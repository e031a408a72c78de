import { TOKENS } from "@coil/core";
import { CoilError } from "@coil/errors";
import type { DependencyContainer } from "tsyringe";

import { registerPlugins } from "./plugins.js";

/**
 * Which accelerator each model of a repository runs with: one name for every model
 * ("compile"), or names per model, "*" for the others ({ "bert": "onnxruntime", "*":
 * "compile" }). "none" keeps a model eager.
 */
export type AcceleratorSelection = string | Readonly<Record<string, string>>;

const NAME = /^[a-z0-9][a-z0-9-]*$/;

/** The accelerator `model` runs with under `selection`, or undefined (eager). */
export function acceleratorFor(selection: AcceleratorSelection | undefined, model: string): string | undefined {
  const name = typeof selection === "string" ? selection : selection?.[model] ?? selection?.["*"];
  return name === undefined || name === "none" ? undefined : name;
}

/** Checks a selection's shape and names; returns it as a per-model record. */
export function checkSelection(selection: unknown, where = "accelerate"): Record<string, string> {
  const record = typeof selection === "string" ? { "*": selection } : selection;
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    throw new CoilError("INVALID_ARGUMENT", `${where}: an accelerator name, or {"model": "name", "*": "name"}, got ${JSON.stringify(selection)}`);
  }
  for (const [model, name] of Object.entries(record)) {
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new CoilError("INVALID_ARGUMENT", `${where}: model "${model}" names accelerator ${JSON.stringify(name)}; a name is lowercase letters, digits and -`);
    }
  }
  return { ...record } as Record<string, string>;
}

/** `--accelerate NAME` (every model) and `--accelerate MODEL=NAME` (one model), over `base`. */
export function parseAccelerateFlags(flags: readonly string[], base: Record<string, string> = {}): Record<string, string> {
  const selection = { ...base };
  for (const flag of flags) {
    const eq = flag.indexOf("=");
    const [model, name] = eq < 0 ? ["*", flag] : [flag.slice(0, eq), flag.slice(eq + 1)];
    if (model === "") throw new CoilError("INVALID_ARGUMENT", `--accelerate ${flag}: expected NAME or MODEL=NAME`);
    selection[model] = name;
  }
  return checkSelection(selection, "--accelerate");
}

/**
 * Makes sure the container holds every accelerator the selection names: one not
 * registered by a plugin already is loaded as its package, @coil/accelerator-<name>,
 * like `--backend NAME` (failing with PLUGIN_FAILED naming the package to install).
 */
export async function registerSelectedAccelerators(
  container: DependencyContainer,
  selection: AcceleratorSelection | undefined,
  baseDir?: string,
): Promise<void> {
  if (selection === undefined) return;
  const wanted = new Set(Object.values(checkSelection(selection)).filter((name) => name !== "none"));
  const registered = () => new Set(container.isRegistered(TOKENS.Accelerator, true) ? container.resolveAll(TOKENS.Accelerator).map((a) => a.name) : []);
  const missing = [...wanted].filter((name) => !registered().has(name));
  await registerPlugins(
    container,
    missing.map((name) => `@coil/accelerator-${name}`),
    baseDir,
  );
  const known = registered();
  for (const name of missing) {
    if (!known.has(name)) {
      throw new CoilError("PLUGIN_FAILED", `@coil/accelerator-${name} registered no accelerator named "${name}"`, {
        details: { module: `@coil/accelerator-${name}`, stage: "register" },
      });
    }
  }
}
