// The coil layer over the Debian base: Node (this machine's binary: Debian 12's
// nodejs is older than Coil's engines), the Coil packages installed from their
// tarballs in /opt/coil, `coil` on PATH, /etc/coil/coil.json (HTTP 8080, gRPC 9000),
// and the image's configuration: non-root user, entry point, ports, health check.
// Reused while its inputs (the base, node, the tarballs, these scripts) are the same.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { basename, join } from "node:path";

import { installPackages } from "./coil-packages.mjs";
import { imageExists, imageLabels, removeOlderBuilds, workingContainer } from "./images.mjs";
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
  MANIFEST_LABEL,
  MODELS_DIR,
  READY_PATH,
  USER,
} from "./settings.mjs";

/** The health check: the readiness endpoint answers 200 (node's fetch: no curl in the image). */
const HEALTHCHECK = `CMD node -e "fetch('http://127.0.0.1:${HTTP_PORT}${READY_PATH}').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"`;

function sha256(data) {
  return createHash("sha256").update(data).digest("hex");
}

/** Everything the layer is made of, by name -> hash: the base, node, each tarball's
 * bytes, the baked coil.json and the build scripts themselves; and their hash, the key. */
export function layerInputs(baseReference, tarballs) {
  const scripts = [join(IMAGE_DIR, "build.mjs"), join(IMAGE_DIR, "coil.json"), ...readdirSync(join(IMAGE_DIR, "lib")).map((f) => join(IMAGE_DIR, "lib", f))];
  const files = [process.execPath, ...tarballs, ...scripts];
  const inputs = Object.fromEntries(
    [["base", baseReference], ...files.map((file) => [basename(file), sha256(readFileSync(file)).slice(0, 16)])].sort(([a], [b]) => a.localeCompare(b)),
  );
  return { key: sha256(JSON.stringify(inputs)).slice(0, 16), inputs };
}

/** Which inputs differ from the ones `latest` was built from (its label), to say why a
 * build does not reuse it. */
async function changedSinceLatest(inputs) {
  const previous = (await imageLabels(`${IMAGE}:latest`))?.[MANIFEST_LABEL];
  if (!previous) return "no earlier build";
  const before = JSON.parse(previous);
  const changed = [...new Set([...Object.keys(before), ...Object.keys(inputs)])].filter((name) => before[name] !== inputs[name]);
  return changed.length > 0 ? `changed since the last build: ${changed.join(", ")}` : "same inputs as the last build";
}

/** Builds `localhost/coil:<key>` (tagged `latest` too) unless it exists (or `rebuild`). */
export async function ensureCoilImage(baseReference, tarballs, { rebuild = false } = {}) {
  const { key, inputs } = layerInputs(baseReference, tarballs);
  const reference = `${IMAGE}:${key}`;
  if (!rebuild && (await imageExists(reference))) {
    await exec(BUILDAH, ["tag", reference, `${IMAGE}:latest`]);
    return { reference, reused: true };
  }
  say(`building ${reference}: ${rebuild ? "--rebuild" : await changedSinceLatest(inputs)}`);
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
      "--label", `${MANIFEST_LABEL}=${JSON.stringify(inputs)}`,
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
