import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

import type { CoilPlugin } from "@coil/core";
import { CoilError, isCoilError } from "@coil/errors";
import type { DependencyContainer } from "tsyringe";

/**
 * A plugin as code or configuration names it: a module — a package name or a file
 * path — whose default export is a CoilPlugin, or the function itself; optionally with
 * the options it is registered with.
 */
export type PluginEntry = string | CoilPlugin | { module: string | CoilPlugin; options?: unknown };

/** What a runtime is assembled from unless told otherwise: the CPU backend and the
 * Open Inference Protocol over HTTP and gRPC. */
export const DEFAULT_PLUGINS: readonly PluginEntry[] = Object.freeze(["@coil/backend-cpu", "@coil/adapter-http", "@coil/adapter-grpc"]);

/**
 * Registers each plugin into `container`, in order, so a later one overrides what an
 * earlier one registered under the same token (a second backend replaces the first).
 * Module paths resolve against `baseDir`; package names from Coil's own dependencies,
 * else from `baseDir`'s node_modules (a plugin installed in the user's project).
 * Fails with PLUGIN_FAILED naming the module and the cause.
 */
export async function registerPlugins(container: DependencyContainer, entries: readonly PluginEntry[], baseDir = process.cwd()): Promise<void> {
  for (const entry of entries) {
    const { module, options } = typeof entry === "object" ? entry : { module: entry, options: undefined };
    const name = typeof module === "string" ? module : module.name || "an anonymous plugin function";
    const plugin = typeof module === "string" ? await loadPlugin(module, baseDir) : module;
    try {
      await plugin(container, options);
    } catch (cause) {
      throw new CoilError("PLUGIN_FAILED", `plugin ${name} failed to register: ${messageOf(cause)}`, {
        cause,
        details: { module: name, stage: "register", ...(isCoilError(cause) && { code: cause.code }) },
      });
    }
  }
}

/** Imports a plugin module and returns its default export, checked to be a function. */
export async function loadPlugin(specifier: string, baseDir = process.cwd()): Promise<CoilPlugin> {
  if (typeof specifier !== "string" || specifier === "") {
    throw new CoilError("INVALID_ARGUMENT", `a plugin is a module name or path, got ${JSON.stringify(specifier)}`);
  }
  const isPath = specifier.startsWith(".") || isAbsolute(specifier) || specifier.startsWith("file:");
  let exports: Record<string, unknown>;
  try {
    exports = isPath ? await import(specifier.startsWith("file:") ? specifier : pathToFileURL(resolve(baseDir, specifier)).href) : await importPackage(specifier, baseDir);
  } catch (cause) {
    const hint = isPath ? "check the path" : `install it beside @coil/runtime (npm install ${specifier}) or give its path`;
    throw new CoilError("PLUGIN_FAILED", `could not load plugin ${specifier}: ${messageOf(cause)} (${hint})`, {
      cause,
      details: { module: specifier, stage: "load" },
    });
  }
  const plugin = defaultExport(exports);
  if (typeof plugin !== "function") {
    throw new CoilError(
      "PLUGIN_FAILED",
      `plugin ${specifier} has no default export to register with: a plugin module default-exports (container, options) => void`,
      { details: { module: specifier, stage: "load" } },
    );
  }
  return plugin as CoilPlugin;
}

/** From Coil's own dependencies first (the defaults, or a plugin installed beside Coil),
 * else from the user's project. */
async function importPackage(specifier: string, baseDir: string): Promise<Record<string, unknown>> {
  try {
    return (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    if (!isNotFound(error, specifier)) throw error;
    let path: string;
    try {
      path = createRequire(join(baseDir, "package.json")).resolve(specifier);
    } catch {
      throw error; // not in the project either: report the first miss
    }
    return (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  }
}

/** Whether `error` says the package itself is missing, not something it imports. */
function isNotFound(error: unknown, specifier: string): boolean {
  const { code, message = "" } = (error ?? {}) as { code?: string; message?: string };
  return (code === "ERR_MODULE_NOT_FOUND" || /Cannot find (package|module)|Failed to (load|resolve)/.test(message)) && message.includes(specifier);
}

/** An ES module's default export, or a CommonJS module's exports (or their `default`). */
function defaultExport(exports: Record<string, unknown>): unknown {
  const value = exports["default"];
  if (typeof value === "function") return value;
  const nested = (value as Record<string, unknown> | undefined)?.["default"];
  return typeof nested === "function" ? nested : value;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
