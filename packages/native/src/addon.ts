import { existsSync } from "node:fs";
import * as timers from "node:timers";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CoilError, type CoilErrorCode } from "@coil/errors";

import type { HandOffSettings, HandOffStats } from "./hand-off.js";
import { resultDecoder } from "./result-decoder.js";
import { Tensor } from "./tensor.js";

/** The native interpreter as the addon exposes it (native/src/addon/addon.cc). */
export interface NativeInterpreter {
  /** `timings`, when given, receives [seconds queued, seconds run] before the promise settles. */
  call(functionName: string, args: unknown[], jobId: number, timings?: Float64Array): Promise<unknown>;
  cancel(jobId: number, code: "CANCELLED" | "DEADLINE_EXCEEDED", message: string): "dequeued" | "interrupting" | "unknown";
  cancelAll(code: "CANCELLED" | "DEADLINE_EXCEEDED", message: string): number;
  readonly load: number;
  readonly index: number;
  readonly busySeconds: number;
}

export interface NativeStartOptions {
  library: string;
  executable: string;
  sysPath: string[];
  bridgePath: string;
  /** libcoil_namespace.so: loaded first in the interpreter's namespace, so no dlopen
   * there can ask for RTLD_GLOBAL (docs/engine.md, fact 5). */
  namespaceRoot?: string;
  jobId: number;
}

export interface NativeAddon {
  configure(hooks: {
    tensorClass: typeof Tensor;
    /** Builds a result from the engine's encoding (result-decoder.ts). */
    decodeResult(program: string, packed: unknown[] | null, ...spread: unknown[]): unknown;
    createError(code: string, message: string, details: { pythonType?: string; pythonTraceback?: string }): Error;
    /** node:timers' own: results are settled from it, and a test's fake timers
     * (which replace globalThis.setImmediate) must not hold them back. */
    setImmediate: typeof setImmediate;
  }): void;
  startInterpreter(options: NativeStartOptions): { interpreter: NativeInterpreter; ready: Promise<string> };
  interpreterCount(): number;
  /** How many times an interpreter's thread cleared glibc's scope-lookup flag that a
   * failed dlsym in its namespace left set (docs/engine.md, fact 14). */
  scopeFlagsCleared(): number;
  /** The process's hand-off settings after applying those given (see hand-off.ts). */
  handOff(settings?: Partial<HandOffSettings>): HandOffSettings;
  handOffStats(): HandOffStats;
  /** execve; returns only by throwing (replace-process.ts). */
  replaceProcess(file: string, argv: string[], env: string[]): void;
  /** A Uint8Array over a private (copy-on-write) mapping of the whole file. */
  mapFile(path: string): Uint8Array;
  /** [end, count, regular] of the JSON array of numbers at bytes[position], its numbers
   * in out (all of them unless count > out.length); null if it is not one. */
  scanJsonNumbers(bytes: Uint8Array, position: number, maxLevels: number, out: Float64Array): [end: number, count: number, regular: boolean] | null;
  readonly maxInterpreters: number;
  /** The dtypes' names in the engine's order: a result's tensors carry an index. */
  readonly dtypeNames: readonly string[];
}

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Where the engine's Python half lives: a packed copy, or the monorepo's native/. */
export function bridgePath(): string {
  const candidates = [
    join(packageRoot, "native", "python", "coil_bridge.py"),
    join(packageRoot, "..", "..", "native", "python", "coil_bridge.py"),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new CoilError("NATIVE_LOAD_FAILED", `coil_bridge.py not found in ${candidates.join(" or ")}`);
  return found;
}

let addon: NativeAddon | undefined;

function addonFile(): string {
  return process.env.COIL_NATIVE_ADDON ?? join(packageRoot, "build", "Release", "coil_native.node");
}

/** The namespace root the engine builds beside the addon (native/src/namespace). */
export function namespaceRootPath(): string {
  const file = join(dirname(addonFile()), "libcoil_namespace.so");
  if (!existsSync(file)) {
    throw new CoilError(
      "NATIVE_LOAD_FAILED",
      `${file} is missing: the native engine was built by an older version. Rebuild it with \`npm run build -w @coil/native\``,
      { details: { file } },
    );
  }
  return file;
}

/** Loads the addon once, and explains what is missing when it can't. */
export function loadAddon(): NativeAddon {
  if (addon) return addon;
  const file = addonFile();
  if (process.platform !== "linux") {
    throw new CoilError("NATIVE_LOAD_FAILED", `Coil's interpreter engine runs on Linux (glibc) only, not ${process.platform}`);
  }
  if (!existsSync(file)) {
    throw new CoilError(
      "NATIVE_LOAD_FAILED",
      `the native engine is not built (${file} is missing). Build it with \`npm run build -w @coil/native\` ` +
        "(needs cmake, make and a C++17 compiler: apt-get install cmake g++ make)",
      { details: { file } },
    );
  }
  let loaded: NativeAddon;
  try {
    loaded = createRequire(import.meta.url)(file) as NativeAddon;
  } catch (cause) {
    throw new CoilError("NATIVE_LOAD_FAILED", `cannot load the native engine ${file}: ${(cause as Error).message}`, {
      cause,
      details: { file },
    });
  }
  if (!Array.isArray(loaded.dtypeNames)) {
    throw new CoilError(
      "NATIVE_LOAD_FAILED",
      `${file} was built by an older version of Coil (it has no dtypeNames). Rebuild it with \`npm run build -w @coil/native\``,
      { details: { file } },
    );
  }
  loaded.configure({
    tensorClass: Tensor,
    decodeResult: resultDecoder(loaded.dtypeNames),
    createError: (code, message, details) =>
      new CoilError(code as CoilErrorCode, message, {
        ...(details.pythonType !== undefined && { pythonType: details.pythonType }),
        ...(details.pythonTraceback !== undefined && { pythonTraceback: details.pythonTraceback }),
      }),
    setImmediate: timers.setImmediate,
  });
  addon = loaded;
  return loaded;
}
