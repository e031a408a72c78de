import { loadAddon } from "./addon.js";

/**
 * Replaces this process by `file` run with `argv` (argv[0] included) and `env`
 * (execve): the same pid, parent and process group, so signals and exit statuses
 * need no relaying. For a command that must restart itself with settings read only
 * at process start -- GLIBC_TUNABLES (docs/engine.md, fact 2), V8's heap flags.
 * Never returns; throws INTERNAL if the kernel refuses, and INVALID_ARGUMENT once
 * this process has started an interpreter.
 */
export function replaceProcess(file: string, argv: readonly string[], env: NodeJS.ProcessEnv): never {
  const vars = Object.entries(env).flatMap(([name, value]) => (value === undefined ? [] : [`${name}=${value}`]));
  loadAddon().replaceProcess(file, [...argv], vars);
  throw new Error("unreachable: execve returned without an error");
}
