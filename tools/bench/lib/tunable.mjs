// A process gets more than a few interpreters only when GLIBC_TUNABLES holds the
// tunable (GLIBC_TUNABLE of @coil/native) at its start (docs/engine.md, fact 2): a
// benchmark started without it runs itself again with it, as the coil command does.
import { INTERPRETERS_WITHOUT_TUNABLE, interpreterBudget } from "@coil/native";

/** Call first thing: returns when this process has the tunable (or COIL_NO_REEXEC=1
 * is set), else runs the same command again with it and exits as that child does. */
export async function relaunchWithTunable() {
  if (interpreterBudget() > INTERPRETERS_WITHOUT_TUNABLE) return;
  // Imported only here: the measured process should not carry the runtime's modules.
  const { reexecWithTunable } = await import("@coil/runtime");
  const exitCode = reexecWithTunable();
  if (exitCode !== undefined) process.exit(await exitCode);
}
