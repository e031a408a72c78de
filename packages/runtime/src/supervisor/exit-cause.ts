import { constants } from "node:os";

/** Why a process ended, as the supervisor logs and counts it. */
export interface ExitCause {
  /** "SIGSEGV", "SIGKILL", ... or "exit code 1". */
  cause: string;
  /** The signal's name, when a signal ended it. */
  signal?: NodeJS.Signals;
  /** Its exit code, when it exited. */
  code?: number;
  /** The shell's status for it: the code, or 128 + the signal's number. */
  status: number;
}

/** A child's end, from Node's ("exit", code, signal). */
export function exitCause(code: number | null, signal: NodeJS.Signals | null): ExitCause {
  if (signal) return { cause: signal, signal, status: 128 + signalNumber(signal) };
  return { cause: `exit code ${code ?? 1}`, code: code ?? 1, status: code ?? 1 };
}

/** The signal's number on this platform (SIGSEGV: 11 on Linux). */
export function signalNumber(signal: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[signal] ?? 0;
}
