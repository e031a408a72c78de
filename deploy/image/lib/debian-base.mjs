// The base layer: a Debian root file system made by mmdebstrap from Debian's packages
// (the mirror this machine's apt uses), committed with `buildah from scratch`. No base
// image is pulled. Reused while its inputs (packages, sources, options) are the same.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { sourcesFor } from "./apt-sources.mjs";
import { imageExists, removeOlderBuilds, workingContainer } from "./images.mjs";
import { BUILDAH } from "./paths.mjs";
import { exec, say } from "./progress.mjs";
import { BASE_IMAGE, DEBIAN_PACKAGES, INPUTS_LABEL, KIND_LABEL, MODELS_DIR, SUITE, USER } from "./settings.mjs";

/** mmdebstrap's options, less the output and the sources (hashed with them). Docs,
 * manuals and translations are left out (copyright files stay); apt's lists and cache
 * are dropped (a derived image runs `apt-get update` first). */
function mmdebstrapOptions() {
  return [
    "--mode=root",
    "--variant=minbase",
    "--format=tar",
    `--include=${DEBIAN_PACKAGES.join(",")}`,
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    `--customize-hook=chroot "$1" useradd --uid ${USER.uid} --user-group --create-home --home-dir ${USER.home} --shell /bin/sh ${USER.name}`,
    `--customize-hook=mkdir -p "$1${MODELS_DIR}"`,
    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log',
  ];
}

/** The base image's reference for this machine's sources and the options above. */
export function baseImage() {
  const sources = sourcesFor(SUITE);
  const key = createHash("sha256").update(JSON.stringify({ suite: SUITE, sources, options: mmdebstrapOptions() })).digest("hex").slice(0, 16);
  return { reference: `${BASE_IMAGE}:${key}`, key, sources };
}

/** Builds the base image unless one with the same inputs exists (or `rebuild`). */
export async function ensureBaseImage({ rebuild = false } = {}) {
  const { reference, key, sources } = baseImage();
  if (!rebuild && (await imageExists(reference))) return { reference, reused: true };
  const scratch = mkdtempSync("/var/tmp/coil-image-base.");
  try {
    const sourcesFile = join(scratch, "sources.sources");
    writeFileSync(sourcesFile, sources);
    const rootfs = join(scratch, "rootfs.tar");
    say(`mmdebstrap ${SUITE} (${DEBIAN_PACKAGES.join(" ")}) from ${sources.match(/^URIs: .*$/gm)?.map((l) => l.slice(6)).join(", ")}`);
    // Debian's own python3 for its helpers (mmtarfilter), not a pyenv shim earlier on PATH.
    const env = { ...process.env, PATH: `/usr/sbin:/usr/bin:/sbin:/bin:${process.env.PATH ?? ""}` };
    await exec("mmdebstrap", [...mmdebstrapOptions(), SUITE, rootfs, sourcesFile], { show: true, env });
    say(`root file system: ${(statSync(rootfs).size / 2 ** 20).toFixed(0)} MiB tar; committing ${reference}`);
    const container = await workingContainer("scratch");
    await exec(BUILDAH, ["add", container, rootfs, "/"]);
    await exec(BUILDAH, ["config", "--label", `${INPUTS_LABEL}=${key}`, "--label", `${KIND_LABEL}=base`, container]);
    await exec(BUILDAH, ["commit", "--rm", "--format", "docker", container, reference]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const removed = await removeOlderBuilds("base", key);
  if (removed > 0) say(`removed ${removed} older base image(s)`);
  return { reference, reused: false };
}
