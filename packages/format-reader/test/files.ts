import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isCoilError, type CoilErrorCode } from "@coil/errors";
import { expect } from "vitest";

/** A temp folder removed by `cleanup`. */
export function tempDir(prefix = "coil-format-"): { dir: string; file: (name: string, bytes?: Uint8Array) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file: (name, bytes) => {
      const path = join(dir, name);
      if (bytes !== undefined) writeFileSync(path, bytes);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Awaits `promise`, expecting a CoilError of `code`; returns it. */
export async function expectCoilError(promise: Promise<unknown>, code: CoilErrorCode, message?: RegExp): Promise<Error> {
  let error: unknown;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  expect(error, "expected a rejection").toBeDefined();
  if (!isCoilError(error)) throw new Error(`expected a CoilError ${code}, got: ${String(error)}`, { cause: error });
  expect(error.code, error.message).toBe(code);
  if (message !== undefined) expect(error.message).toMatch(message);
  return error;
}
