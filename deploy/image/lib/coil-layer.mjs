// The coil layer over the Debian base: Node (this machine's binary: Debian 12's
// nodejs is older than Coil's engines), the Coil packages installed from their
// tarballs in /opt/coil, `coil` on PATH, /etc/coil/coil.json (HTTP 8080, gRPC 9000),
// and the image's configuration: non-root user, entry point, ports, health check.
// Reused while its inputs (the base, node, the tarballs, these scripts) are the same.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { basename, join } from "node:path";

import { installPackages } from "./coil-packages.mjs";
import { imageExists, removeOlderBuilds, workingContainer } from "./images.mjs";
import { BUILDAH, IMAGE_DIR } from "./paths.mjs";
import { exec, say } from "./progress.mjs";
import {
  APP_DIR,
  CONFIG_FILE,
  GRPC_PORT,
  HTTP_PORT,
  IMAGE,
  INPUTS_LABEL,
  KIND_LABEL,
  MODELS_DIR,
  READY_PATH,
  USER,
} from "./settings.mjs";

/** The health check: the readiness endpoint answers 200 (node's fetch: no curl in the image). */
const HEALTHCHECK = `CMD node -e "fetch('http://127.0.0.1:${HTTP_PORT}${READY_PATH}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"`;

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

/** The hash of everything the layer is made of: the base, node, the tarballs' bytes,
 * the baked coil.json and the build scripts themselves. */
export function layerKey(baseReference, tarballs) {
  const scripts = [join(IMAGE_DIR, "build.mjs"), join(IMAGE_DIR, "coil.json"), ...readdirSync(join(IMAGE_DIR, "lib")).map((f) => join(IMAGE_DIR, "lib", f))].sort();
  const inputs = {
    base: baseReference,
    node: sha256(readFileSync(process.execPath)),
    tarballs: [...tarballs].sort((a, b) => basename(a).localeCompare(basename(b))).map((file) => [basename(file), sha256(readFileSync(file))]),
    scripts: scripts.map((file) => [basename(file), sha256(readFileSync(file))]),
  };
  return sha256(JSON.stringify(inputs)).slice(0, 16);
}

/** Builds `localhost/coil:<key>` (tagged `latest` too) unless it exists (or `rebuild`). */
export async function ensureCoilImage(baseReference, tarballs, { rebuild = false } = {}) {
  const key = layerKey(baseReference, tarballs);
  const reference = `${IMAGE}:${key}`;
  if (!rebuild && (await imageExists(reference))) {
    await exec(BUILDAH, ["tag", reference, `${IMAGE}:latest`]);
    return { reference, reused: true };
  }
  const scratch = mkdtempSync("/var/tmp/coil-image-layer.");
  try {
    const root = join(scratch, "root");
    const app = join(root, APP_DIR);
    mkdirSync(app, { recursive: true });
    say(`npm install of ${tarballs.length} tarballs into ${APP_DIR} (builds @coil/native's addon)`);
    await installPackages(app, tarballs);
    mkdirSync(join(root, "usr/local/bin"), { recursive: true });
    copyFileSync(process.execPath, join(root, "usr/local/bin/node"));
    symlinkSync(`../../..${APP_DIR}/node_modules/.bin/coil`, join(root, "usr/local/bin/coil"));
    mkdirSync(join(root, "etc/coil"), { recursive: true });
    copyFileSync(join(IMAGE_DIR, "coil.json"), join(root, CONFIG_FILE));
    const layer = join(scratch, "layer.tar");
    await exec("tar", ["-C", root, "--owner=0", "--group=0", "--numeric-owner", "-cf", layer, "."]);

    say(`committing ${reference}`);
    const container = await workingContainer(baseReference);
    await exec(BUILDAH, ["add", container, layer, "/"]);
    await exec(BUILDAH, [
      "config",
      "--user", USER.name,
      "--workingdir", USER.home,
      "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      // Set at start, so coil serve need not restart itself to get 16 namespaces.
      "--env", "GLIBC_TUNABLES=glibc.rtld.nns=16",
      "--env", "NODE_ENV=production",
      "--entrypoint", JSON.stringify(["/usr/bin/tini", "--", "coil", "serve", "--config", CONFIG_FILE]),
      "--cmd", JSON.stringify([MODELS_DIR]),
      "--port", `${HTTP_PORT}/tcp`,
      "--port", `${GRPC_PORT}/tcp`,
      "--healthcheck", HEALTHCHECK,
      "--healthcheck-interval", "10s",
      "--healthcheck-timeout", "5s",
      "--healthcheck-start-period", "120s",
      "--healthcheck-retries", "3",
      "--label", `${INPUTS_LABEL}=${key}`,
      "--label", `${KIND_LABEL}=coil`,
      "--label", "org.opencontainers.image.title=coil",
      "--label", "org.opencontainers.image.description=Coil: Python models on isolated CPython interpreters in one Node.js process, served over the Open Inference Protocol",
      "--label", `org.opencontainers.image.base.name=${baseReference}`,
      container,
    ]);
    // docker format: OCI image configs have no HEALTHCHECK.
    await exec(BUILDAH, ["commit", "--rm", "--format", "docker", container, reference]);
    await exec(BUILDAH, ["tag", reference, `${IMAGE}:latest`]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const removed = await removeOlderBuilds("coil", key);
  if (removed > 0) say(`removed ${removed} older coil image(s)`);
  return { reference, reused: false };
}
