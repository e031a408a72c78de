// The scratch project: the workspace's publishable packages packed with `npm pack`
// and installed from their tarballs, as a user's project installs them from npm.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { childEnv, run, runOk, tail } from "./process.js";

const NX_ENV = { NX_DAEMON: "false", NX_NO_CLOUD: "true", NX_TUI: "false" };

/** `nx run-many -t build` over the workspace; returns the end of its output. */
export async function buildWorkspace(root: string, logFile: string): Promise<string> {
  const result = await run("npx", ["--no-install", "nx", "run-many", "-t", "build", "--output-style=static"], {
    cwd: root,
    env: childEnv(NX_ENV),
  });
  writeFileSync(logFile, result.stdout + result.stderr);
  if (result.code !== 0) throw new Error(`workspace build failed (${logFile}):\n${tail(result.stdout + result.stderr)}`);
  return tail(result.stdout, 3);
}

/** The workspace's publishable packages (packages/* not marked private), by name. */
export function publishablePackages(root: string): string[] {
  return readdirSync(join(root, "packages"))
    .map((dir) => join(root, "packages", dir, "package.json"))
    .filter((file) => existsSync(file))
    .map((file) => JSON.parse(readFileSync(file, "utf8")) as { name: string; private?: boolean })
    .filter((pkg) => pkg.private !== true)
    .map((pkg) => pkg.name)
    .sort();
}

/** `npm pack` of each named workspace package into `destination`; the tarballs' paths. */
export async function packPackages(root: string, names: readonly string[], destination: string): Promise<string[]> {
  const tarballs: string[] = [];
  for (const name of names) {
    const output = await runOk("npm", ["pack", "--workspace", name, "--pack-destination", destination, "--json"], { cwd: root });
    tarballs.push(join(destination, (JSON.parse(output) as { filename: string }[])[0]!.filename));
  }
  return tarballs;
}

/**
 * npm 11 checks dependencies' install scripts against the project's allowScripts. A
 * package installed from a tarball is matched by its spec, "file:<path to .tgz>", not
 * by its name ("@coil/native": true does not cover it; `npm install-scripts approve
 * @coil/native` writes the file: key). Without --strict-allow-scripts npm only warns
 * and runs them anyway; with it, the install proves the approval is what lets them run.
 * @coil/native's install script builds the addon; protobufjs (of @grpc/grpc-js) has a
 * postinstall.
 */
export function writeProjectPackageJson(project: string, nativeTarball: string): void {
  const file = join(project, "package.json");
  const pkg = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  pkg["allowScripts"] = { [`file:${nativeTarball}`]: true, protobufjs: true };
  writeFileSync(file, `${JSON.stringify(pkg, null, 2)}\n`);
}

/** `npm install --strict-allow-scripts` of tarballs into the project; its whole output
 * goes to `logFile` (and is returned). */
export async function installTarballs(project: string, tarballs: readonly string[], logFile: string): Promise<string> {
  const result = await run(
    "npm",
    ["install", "--strict-allow-scripts", "--foreground-scripts", "--no-audit", "--no-fund", ...tarballs],
    { cwd: project },
  );
  const output = result.stdout + result.stderr;
  writeFileSync(logFile, output);
  if (result.code !== 0) throw new Error(`npm install in ${project} failed (${logFile}):\n${tail(output, 60)}`);
  return output;
}
