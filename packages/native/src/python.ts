import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";

import { CoilError } from "@coil/errors";

/** What one Python executable told us about itself (asked once, then cached). */
export interface PythonInstallation {
  executable: string;
  version: string;
  /** The shared libpython each interpreter loads into its own namespace. */
  library: string;
  prefix: string;
  /** sys.base_prefix: differs from prefix in a virtual environment. */
  basePrefix: string;
  /** sys.path as that executable sees it (virtual environments included). */
  sysPath: string[];
  /** For each module asked about: can this Python import it? */
  modules: Record<string, boolean>;
}

export interface DiscoverOptions {
  /** An executable path or a name on PATH. Default: $COIL_PYTHON, then python3 on
   * PATH, then /usr/bin/python3 — the first that can import `requiredModules`. */
  python?: string;
  /** Modules the backend needs (e.g. ["torch"]). */
  requiredModules?: string[];
}

const execFileAsync = promisify(execFile);

// Runs in the candidate Python; prints one JSON line.
const PROBE = `
import importlib.util, json, os, sys, sysconfig
v = sysconfig.get_config_var
names = [n for n in (v("INSTSONAME"), v("LDLIBRARY")) if n]
dirs = [d for d in (v("LIBDIR"), os.path.join(v("LIBDIR") or "", v("MULTIARCH") or ""), v("LIBPL")) if d]
library = None
for n in names:
    for d in dirs:
        if library is None and (n.endswith(".so") or ".so." in n) and os.path.isfile(os.path.join(d, n)):
            library = os.path.join(d, n)
found = {}
for m in json.loads(sys.argv[1]):
    try:
        found[m] = importlib.util.find_spec(m) is not None
    except Exception:
        found[m] = False
print(json.dumps({
    "executable": sys.executable,
    "version": ".".join(map(str, sys.version_info[:3])),
    "shared": bool(v("Py_ENABLE_SHARED")),
    "library": library,
    "libraryNames": names,
    "libraryDirs": dirs,
    "prefix": sys.prefix,
    "basePrefix": sys.base_prefix,
    "sysPath": [p for p in sys.path if p],
    "modules": found,
}))
`;

const cache = new Map<string, Promise<PythonInstallation>>();

/** Asks one Python executable where its shared libpython and sys.path are. */
export function inspectPython(python: string, requiredModules: string[] = []): Promise<PythonInstallation> {
  const key = `${python}\0${requiredModules.join(",")}`;
  let answer = cache.get(key);
  if (!answer) {
    answer = probe(python, requiredModules);
    answer.catch(() => cache.delete(key));
    cache.set(key, answer);
  }
  return answer;
}

async function probe(python: string, requiredModules: string[]): Promise<PythonInstallation> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(python, ["-c", PROBE, JSON.stringify(requiredModules)], { timeout: 30_000 }));
  } catch (cause) {
    throw new CoilError("PYTHON_NOT_FOUND", `cannot run Python ${python}: ${(cause as Error).message.split("\n")[0]}`, {
      cause,
      details: { python },
    });
  }
  const info = JSON.parse(stdout.trim().split("\n").pop()!) as ProbeAnswer;
  if (!info.shared || !info.library || !existsSync(info.library)) throw noSharedLibpython(python, info);
  return {
    executable: info.executable,
    version: info.version,
    library: info.library,
    prefix: info.prefix,
    basePrefix: info.basePrefix,
    sysPath: info.sysPath,
    modules: info.modules,
  };
}

interface ProbeAnswer extends Omit<PythonInstallation, "library"> {
  shared: boolean;
  library: string | null;
  libraryNames: string[];
  libraryDirs: string[];
}

/** NO_SHARED_LIBPYTHON, naming the fix for the two ways it happens. */
function noSharedLibpython(
  python: string,
  info: Pick<ProbeAnswer, "executable" | "version" | "shared" | "libraryNames" | "libraryDirs">,
): CoilError {
  const minor = info.version.split(".").slice(0, 2).join(".");
  const why = info.shared
    ? // Built shared, but the library is a separate package (Debian's python3.X
      // works without libpython3.X installed: its executable is linked statically).
      `was built with a shared libpython, but ${info.libraryNames[0] ?? `libpython${minor}.so`} is in none of ` +
      `${[...new Set(info.libraryDirs)].join(", ") || "its LIBDIR"}. Install it (Debian/Ubuntu: apt-get install libpython${minor})`
    : "has no shared libpython (it was built without --enable-shared). Use one that has: rebuild it with " +
      `./configure --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install ${info.version}), ` +
      `Debian's python3 with libpython${minor}, or a conda Python (conda ships libpython)`;
  return new CoilError(
    "NO_SHARED_LIBPYTHON",
    `Python ${info.version} at ${info.executable} ${why}. Coil loads libpython once per interpreter.`,
    { details: { python, executable: info.executable, version: info.version, shared: info.shared } },
  );
}

/** How to get `missing` into this Python: the distribution's packages for the system
 * Python, pip for a Python of its own (a venv, conda, pyenv). */
function installHint(python: PythonInstallation, missing: string[]): string {
  if (python.prefix === "/usr" && python.basePrefix === "/usr") {
    return `install ${missing.map((m) => `python3-${m}`).join(" ")} (Debian/Ubuntu)`;
  }
  return `install ${missing.length > 1 ? "them" : "it"} there: ${python.executable} -m pip install ${missing.join(" ")}`;
}

/** Finds a Python that can import `requiredModules`, or explains why none could. */
export async function discoverPython(options: DiscoverOptions = {}): Promise<PythonInstallation> {
  const required = options.requiredModules ?? [];
  const named = options.python ?? process.env.COIL_PYTHON;
  const candidates = named ? [named] : ["python3", "/usr/bin/python3"];
  const tried: string[] = [];
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      const found = await inspectPython(candidate, required);
      const missing = required.filter((m) => !found.modules[m]);
      if (missing.length === 0) return found;
      tried.push(`${found.executable} (${found.version}) cannot import ${missing.join(", ")}`);
      if (named) {
        throw new CoilError(
          "BACKEND_UNAVAILABLE",
          `Python ${found.executable} cannot import ${missing.join(", ")}; ${installHint(found, missing)}, or pick another Python`,
          { details: { python: found.executable, missing } },
        );
      }
    } catch (error) {
      if (named) throw error;
      lastError = error;
      tried.push(`${candidate}: ${(error as Error).message}`);
    }
  }
  throw new CoilError(
    required.length > 0 ? "BACKEND_UNAVAILABLE" : "PYTHON_NOT_FOUND",
    `no usable Python found${required.length ? ` that can import ${required.join(", ")}` : ""}. Tried:\n  ${tried.join("\n  ")}\n` +
      "Name one with the `python` option or COIL_PYTHON.",
    { cause: lastError, details: { tried } },
  );
}
