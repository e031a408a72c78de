// The engine on every CPython 3.8–3.13 this machine has (docs/engine.md, fact 10), each
// its own test case named by its version. Each runs in a child process of its own: a
// process gets 15 interpreters in its lifetime (fact 8), 2 per Python here, and the
// child uses the built package, as an application would. Needs no torch.
import { execFile, execFileSync } from "node:child_process";
import { existsSync, readdirSync, realpathSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { describe, expect, it } from "vitest";

import type { CoilError } from "@coil/errors";

import { inspectPython } from "./python.js";

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const CHILD = join(packageRoot, "src", "cpython-check.child.mjs");
const MINORS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13"];

interface Found {
  executable: string;
  version: string;
  shared: boolean;
}

/** Candidates: pyenv's versions (`pyenv root`), then pythonX.Y in every PATH folder
 * (not only the first: pyenv's shims shadow /usr/bin). Deduplicated by the real path of
 * the executable each reports. */
async function findCPythons(): Promise<{ found: Found[]; notes: string[]; silent: string[] }> {
  const candidates: string[] = [];
  try {
    const root = execFileSync("pyenv", ["root"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const versions = join(root, "versions");
    for (const name of existsSync(versions) ? readdirSync(versions).sort() : []) candidates.push(join(versions, name, "bin", "python3"));
  } catch {
    // no pyenv
  }
  for (const dir of (process.env.PATH ?? "").split(delimiter).filter(Boolean)) {
    for (const minor of MINORS) candidates.push(join(dir, `python${minor}`));
  }
  const found: Found[] = [];
  const notes: string[] = [];
  const silent: string[] = []; // candidates that did not run (pyenv shims of versions not selected)
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (!existsSync(candidate)) continue;
    let answer: { executable: string; version: string; shared: boolean };
    try {
      answer = { ...(await inspectPython(candidate)), shared: true }; // discovery's own probe
    } catch (error) {
      const refusal = error as CoilError;
      if (refusal.code !== "NO_SHARED_LIBPYTHON") {
        silent.push(candidate);
        continue;
      }
      answer = { ...(refusal.details as { executable: string; version: string }), shared: false };
    }
    const real = realpathSync(answer.executable);
    if (seen.has(real)) continue;
    seen.add(real);
    if (!MINORS.some((m) => answer.version.startsWith(`${m}.`))) {
      notes.push(`${candidate}: CPython ${answer.version}, outside 3.8–3.13: not tested`);
      continue;
    }
    found.push({ executable: candidate, version: answer.version, shared: answer.shared });
  }
  const key = (v: string) =>
    v
      .split(".")
      .map((n) => n.padStart(4, "0"))
      .join(".");
  found.sort((x, y) => key(x.version).localeCompare(key(y.version)) || x.executable.localeCompare(y.executable));
  return { found, notes, silent };
}

interface Outcome {
  value?: unknown;
  code?: string;
  message?: string;
  pythonType?: string;
  pythonTraceback?: string;
}

interface Report {
  probedVersion: string;
  library: string;
  engineVersions: string[];
  sysVersions: string[];
  sent: string;
  echo: string;
  tuple: unknown;
  error: Outcome;
  deadline: Outcome;
  afterDeadline: Outcome;
  parallel: [boolean, number][];
  isolated: boolean;
}

async function runChild(python: string): Promise<{ report?: Report; stdout: string; stderr: string }> {
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [CHILD, python], { cwd: packageRoot, timeout: 180_000 });
  const last = stdout.trim().split("\n").pop() ?? "";
  return { report: last.startsWith("{") ? (JSON.parse(last) as Report) : undefined, stdout, stderr };
}

const { found, notes, silent } = await findCPythons();
const missing = MINORS.filter((m) => !found.some((f) => f.version.startsWith(`${m}.`)));
for (const note of notes) console.log(`[cpython-versions] ${note}`);
for (const minor of missing) {
  const tried = silent.filter((c) => c.endsWith(`python${minor}`));
  console.log(
    `[cpython-versions] CPython ${minor}: not found (pyenv root, python${minor} on PATH): not tested` +
      (tried.length ? `; ${tried.join(", ")} did not run` : ""),
  );
}

describe("the engine on each CPython", () => {
  const shared = found.filter((f) => f.shared);
  it.each(shared.map((f) => [f.version, f.executable] as const))(
    "CPython %s (%s)",
    async (version, executable) => {
      const { report, stdout, stderr } = await runChild(executable);
      expect(report, `no report from the child:\n${stdout}\n${stderr}`).toBeDefined();
      const r = report!;

      // The version each interpreter runs is the one asked for.
      expect(r.probedVersion).toBe(version);
      expect(r.sysVersions).toEqual([version, version]);
      for (const v of r.engineVersions) expect(v.startsWith(`${version} `)).toBe(true);
      expect(r.library).toMatch(new RegExp(`libpython${version.split(".").slice(0, 2).join("\\.")}\\.so`));

      // Values of each kind cross and come back unchanged.
      expect(JSON.parse(r.echo)).toEqual(JSON.parse(r.sent));
      expect(JSON.parse(r.echo)).toMatchObject({ huge: { bigint: "18446744073709551615" }, bytes: { bytes: [0, 1, 254, 255] } });
      expect(r.tuple).toEqual([1, "two", [3.5, null], { z: 1, a: 2 }]);

      // An exception is PYTHON_ERROR with its type and traceback.
      expect(r.error).toMatchObject({ code: "PYTHON_ERROR", pythonType: "ValueError", message: "bad value 3" });
      expect(r.error.pythonTraceback).toContain('failing.py", line 2, in fail');

      // A deadline interrupts pure-Python bytecode; the interpreter serves the next call.
      expect(r.deadline.code).toBe("DEADLINE_EXCEEDED");
      expect(r.afterDeadline).toEqual({ value: 42 });

      // Two interpreters were inside Python at once, on two threads, and share nothing.
      expect(r.parallel.map(([met]) => met)).toEqual([true, true]);
      expect(r.parallel[0]![1]).not.toBe(r.parallel[1]![1]);
      expect(r.isolated).toBe(false);
    },
    200_000,
  );

  // A Python found without a usable shared libpython is a real one to check that the
  // refusal names the fix on (a rebuild, or the missing package).
  const staticBuilds = found.filter((f) => !f.shared);
  it.each(staticBuilds.map((f) => [f.version, f.executable] as const))(
    "CPython %s (%s) without a shared libpython is refused",
    async (_v, executable) => {
      await expect(inspectPython(executable)).rejects.toMatchObject({
        code: "NO_SHARED_LIBPYTHON",
        message: expect.stringMatching(/--enable-shared|apt-get install libpython3/),
      });
    },
  );

  // Reported as skipped, so the summary shows what was not tested.
  for (const minor of missing) it.skip(`CPython ${minor}: not found here`, () => {});

  it("found at least one CPython 3.8–3.13 with a shared libpython", () => {
    expect(shared.length, notes.join("\n")).toBeGreaterThan(0);
  });
});
