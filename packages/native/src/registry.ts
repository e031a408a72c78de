import { CoilError } from "@coil/errors";

import { bridgePath, loadAddon, namespaceRootPath, type NativeInterpreter } from "./addon.js";
import { explainTlsExhaustion, interpreterBudget, MAX_INTERPRETERS, tunableMissingError } from "./capacity.js";
import { Interpreter, nextJobId } from "./interpreter.js";
import type { PythonInstallation } from "./python.js";

// Interpreters are a process-wide resource: a namespace is never given back
// (docs/engine.md, fact 8), so pools borrow interpreters and return them, reset.
interface Slot {
  native: NativeInterpreter;
  python: PythonInstallation;
  version: string;
  lease: Interpreter | undefined; // the holder's handle; undefined when idle
  /** Why it may not be lent now: threads its last holder started still run in it. */
  quarantined?: string;
}

/** What the bridge's reset() reports. */
interface ResetOutcome {
  restored?: number;
  threads_stopped?: number;
  threads_running?: string[];
}

const slots: Slot[] = [];

/** How long a returned interpreter may take to finish its last call and reset.
 * One that takes longer (stuck inside C code, where interrupts don't reach) is
 * retired: never lent again, so a pool's close() cannot hang on it. */
export const RESET_TIMEOUT_MS = 10_000;

/** Interpreters this process has created (started or failed), and how many idle. */
export function interpreterStats(): { created: number; idle: number; quarantined: number; heldBack: string[]; budget: number; max: number } {
  const held = slots.filter((s) => !s.lease && s.quarantined);
  return {
    created: loadAddon().interpreterCount(),
    idle: slots.filter((s) => !s.lease && !s.quarantined).length,
    quarantined: held.length,
    /** Why each quarantined interpreter is held back (its index, the threads still running). */
    heldBack: held.map((s) => s.quarantined!),
    budget: interpreterBudget(),
    max: MAX_INTERPRETERS,
  };
}

/**
 * Lends `count` interpreters of `python`: idle ones first (reset by their last
 * holder), new ones for the rest. All or nothing: if one cannot start, the others
 * go back and the error says why.
 */
export async function acquireInterpreters(count: number, python: PythonInstallation): Promise<Interpreter[]> {
  if (!Number.isInteger(count) || count < 1 || count > MAX_INTERPRETERS) {
    throw new CoilError("INVALID_ARGUMENT", `interpreter count must be an integer from 1 to ${MAX_INTERPRETERS}, got ${count}`);
  }
  const addon = loadAddon();
  // An interpreter held back for its last holder's threads is lent once they have ended.
  await Promise.all(slots.filter((s) => !s.lease && s.quarantined).map((slot) => resetSlot(slot)));
  const reused = slots.filter((s) => !s.lease && !s.quarantined && s.python.library === python.library).slice(0, count);
  const fresh = count - reused.length;
  const created = addon.interpreterCount();
  const budget = interpreterBudget();
  if (created + fresh > budget) {
    const quarantined = slots.filter((s) => !s.lease && s.quarantined);
    if (quarantined.length > 0 && created + fresh - quarantined.length <= budget) {
      throw new CoilError(
        "INTERPRETER_LIMIT",
        `${quarantined.length} of this process's idle interpreters are held back until threads a previous model started end ` +
          `(${quarantined.map((s) => s.quarantined).join("; ")}), and ${count} were asked for`,
        { details: { created, asked: count, quarantined: quarantined.length } },
      );
    }
    if (created + fresh <= MAX_INTERPRETERS) throw tunableMissingError(created + fresh, budget);
    throw new CoilError(
      "INTERPRETER_LIMIT",
      `this process already created ${created} of its ${MAX_INTERPRETERS} interpreters and ${slots.length - slots.filter((s) => s.lease).length} are idle; ` +
        `${count} were asked for. Close a pool to return its interpreters.`,
      { details: { created, asked: count, max: MAX_INTERPRETERS } },
    );
  }
  const leases = reused.map((slot) => lend(slot));
  const bridge = bridgePath();
  const namespaceRoot = namespaceRootPath();
  const starts = Array.from({ length: fresh }, async () => {
    const { interpreter, ready } = addon.startInterpreter({
      library: python.library,
      executable: python.executable,
      sysPath: python.sysPath,
      bridgePath: bridge,
      namespaceRoot,
      jobId: nextJobId(),
    });
    const version = await ready;
    const slot: Slot = { native: interpreter, python, version, lease: undefined };
    slots.push(slot);
    return lend(slot);
  });
  const results = await Promise.allSettled(starts);
  for (const r of results) if (r.status === "fulfilled") leases.push(r.value);
  const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failure) {
    await releaseInterpreters(leases);
    throw explainTlsExhaustion(failure.reason);
  }
  return leases;
}

/** Takes interpreters back: their calls finish, then what their holder loaded is
 * dropped, and they wait idle for the next pool. Further calls on the handles fail
 * with CLOSED. */
export async function releaseInterpreters(interpreters: Interpreter[]): Promise<void> {
  await Promise.all(
    interpreters.map(async (lease) => {
      const slot = slots.find((s) => s.lease === lease);
      if (!slot) return;
      lease.markClosed();
      await resetSlot(slot);
    }),
  );
}

/** Resets an interpreter nobody holds: idle if its last holder left nothing running,
 * quarantined while threads it started run, retired if the reset fails or never runs. */
async function resetSlot(slot: Slot): Promise<void> {
  const id = nextJobId();
  const reset = slot.native.call("reset", [], id) as Promise<ResetOutcome | null>;
  const timer = setTimeout(() => slot.native.cancel(id, "DEADLINE_EXCEEDED", "reset took too long"), RESET_TIMEOUT_MS);
  try {
    const running = (await reset)?.threads_running ?? [];
    slot.lease = undefined;
    // Its threads would run beside the next holder's code, in the next holder's Python.
    if (running.length > 0) slot.quarantined = `interpreter ${slot.native.index}: threads ${running.join(", ")}`;
    else delete slot.quarantined;
  } catch {
    // A reset that fails or never runs leaves state behind: retire the interpreter.
    slots.splice(slots.indexOf(slot), 1);
  } finally {
    clearTimeout(timer);
  }
}


function lend(slot: Slot): Interpreter {
  slot.lease = new Interpreter(slot.native, slot.python, slot.version);
  return slot.lease;
}
