#!/usr/bin/env node
// npm run image: builds Coil's OCI image with no base image pulled. A Debian 12 root
// file system made by mmdebstrap from Debian's packages (python3, torch, numpy,
// torchvision; the mirror this machine's apt uses) is the base layer; the Coil
// packages installed from their `npm pack` tarballs, with Node, are the layer over it.
// Each layer is reused while its inputs hash the same, so a second run takes seconds.
// Prints each step and its time on stderr, the image's name on stdout.
//
//   node deploy/image/build.mjs [--tarballs DIR] [--rebuild] [--rebuild-base]
//     --tarballs DIR   take the packages' tarballs from DIR (already packed) instead of
//                      building the workspace and packing them
//     --rebuild        build the coil layer even when one with the same inputs exists
//     --rebuild-base   make the Debian root file system again too (newer packages)
//
// Needs root (mmdebstrap's root mode, buildah's storage); installs podman, buildah,
// mmdebstrap and runc with apt when missing. podman and buildah run with the settings
// in deploy/image/containers/ (deploy/image/podman): vfs storage, runc, cgroupfs.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { buildWorkspace, packPackages } from "./lib/coil-packages.mjs";
import { ensureCoilImage } from "./lib/coil-layer.mjs";
import { ensureBaseImage } from "./lib/debian-base.mjs";
import { ensureHostTools } from "./lib/host-tools.mjs";
import { imageFacts } from "./lib/images.mjs";
import { say, step, totalSeconds } from "./lib/progress.mjs";

const { values: flags } = parseArgs({
  options: {
    tarballs: { type: "string" },
    rebuild: { type: "boolean", default: false },
    "rebuild-base": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (flags.help) {
  console.log("usage: npm run image -- [--tarballs DIR] [--rebuild] [--rebuild-base]   (deploy/image/README.md)");
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error("[image] needs root (mmdebstrap --mode=root, buildah's storage in /var/lib/containers): run it with sudo");
  process.exit(1);
}

const packed = flags.tarballs ? undefined : mkdtempSync("/var/tmp/coil-image-tarballs.");
try {
  await step("1/4 host tools", ensureHostTools);
  let tarballs;
  if (flags.tarballs) {
    tarballs = readdirSync(flags.tarballs).filter((f) => f.endsWith(".tgz")).map((f) => join(flags.tarballs, f));
    say(`2/4 packages: ${tarballs.length} tarballs from ${flags.tarballs}`);
  } else {
    await step("2/4 workspace build", buildWorkspace);
    tarballs = await step("2/4 npm pack", () => packPackages(packed), (files) => `${files.length} packages`);
  }
  const rebuildBase = flags["rebuild-base"];
  const built = (result) => `${result.reference}${result.reused ? ", reused: same inputs" : ""}`;
  const base = await step("3/4 Debian base layer", () => ensureBaseImage({ rebuild: rebuildBase }), built);
  const { reference } = await step(
    "4/4 coil layer",
    () => ensureCoilImage(base.reference, tarballs, { rebuild: flags.rebuild || rebuildBase }),
    built,
  );
  const facts = await imageFacts(reference);
  say(`done in ${totalSeconds()} s: ${reference} (localhost/coil:latest), ${(facts.size / 1e6).toFixed(0)} MB`);
  console.log(reference);
} catch (error) {
  say(`FAILED after ${totalSeconds()} s: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  if (packed) rmSync(packed, { recursive: true, force: true });
}
