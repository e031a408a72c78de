// The published Coil packages, as a user gets them: the workspace built, each
// publishable package packed with `npm pack` (what `npm publish` uploads), then
// installed from those tarballs with `npm install` (e2e/harness/scratch-project.ts
// does the same for the e2e suite's scratch project).
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { REPO_ROOT } from "./paths.mjs";
import { exec } from "./progress.mjs";

const NX_ENV = { ...process.env, NX_DAEMON: "false", NX_NO_CLOUD: "true", NX_TUI: "false" };

/** `nx run-many -t build` (nx's cache makes it quick when nothing changed). */
export async function buildWorkspace() {
  const output = await exec("npx", ["--no-install", "nx", "run-many", "-t", "build", "--output-style=static"], { cwd: REPO_ROOT, env: NX_ENV });
  // nx's summary, e.g. "Successfully ran target build for 14 projects (and 3 tasks they depend on)".
  return /Successfully ran target build for [^\n]*/.exec(output)?.[0] ?? "done";
}

/** packages/* not marked private, by name. */
export function publishablePackages() {
  return readdirSync(join(REPO_ROOT, "packages"))
    .map((dir) => join(REPO_ROOT, "packages", dir, "package.json"))
    .filter((file) => existsSync(file))
    .map((file) => JSON.parse(readFileSync(file, "utf8")))
    .filter((pkg) => pkg.private !== true)
    .map((pkg) => pkg.name)
    .sort();
}

/** `npm pack` of each publishable package into `destination`; the tarballs' paths. */
export async function packPackages(destination) {
  const tarballs = [];
  for (const name of publishablePackages()) {
    const output = await exec("npm", ["pack", "--workspace", name, "--pack-destination", destination, "--json"], { cwd: REPO_ROOT });
    tarballs.push(join(destination, JSON.parse(output)[0].filename));
  }
  return tarballs;
}

/**
 * Installs the tarballs into `project` (a new folder): npm 11's allowScripts approves
 * @coil/native's install script (it builds the addon from the C++ sources in its
 * tarball) and protobufjs' postinstall, by their specs. Then drops the addon's build
 * tree but for what loads at run time (build/Release: the .node and its .so files).
 */
export async function installPackages(project, tarballs) {
  await exec("npm", ["init", "-y"], { cwd: project });
  const native = tarballs.find((file) => /\/coil-native-[^/]*\.tgz$/.test(file));
  if (!native) throw new Error(`no @coil/native tarball among ${tarballs.join(", ")}`);
  const manifest = JSON.parse(readFileSync(join(project, "package.json"), "utf8"));
  manifest.name = "coil-image";
  manifest.private = true;
  manifest.allowScripts = { [`file:${native}`]: true, protobufjs: true };
  writeFileSync(join(project, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  await exec("npm", ["install", "--strict-allow-scripts", "--foreground-scripts", "--no-audit", "--no-fund", "--omit=dev", ...tarballs], {
    cwd: project,
    show: true,
  });
  const build = join(project, "node_modules/@coil/native/build");
  for (const entry of readdirSync(build)) if (entry !== "Release") rmSync(join(build, entry), { recursive: true, force: true });
  const release = join(build, "Release");
  for (const entry of readdirSync(release)) {
    if (!/\.(node|so)$/.test(entry)) rmSync(join(release, entry), { recursive: true, force: true });
  }
  // The tarballs' paths would only tell where this build ran.
  rmSync(join(project, "package-lock.json"), { force: true });
}
