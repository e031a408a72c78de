// Progress lines (on stderr, so stdout keeps only the tables) and errors in one line.
import { basename } from "node:path";

const script = basename(process.argv[1] ?? "bench", ".mjs");

/** "[scaling] message" on stderr. */
export function progress(message) {
  process.stderr.write(`[${script}] ${message}\n`);
}

/** An error as one line, with its Coil error code when it has one. */
export function describeError(error) {
  const code = error?.code ? `${error.code}: ` : "";
  return `${code}${error?.message ?? String(error)}`.split("\n")[0];
}
