// The host programs the build needs, installed with apt when missing (as root or with
// sudo, tools/as-root.sh), as tools/bootstrap.sh installs its own. Only `npm run image`
// and the image's e2e test install them: a plain test run does not pay for them.
import { join } from "node:path";

import { REPO_ROOT } from "./paths.mjs";
import { exec } from "./progress.mjs";

/** Debian package -> the command that shows it is installed. */
const TOOLS = { podman: "podman", buildah: "buildah", mmdebstrap: "mmdebstrap", runc: "runc" };

async function has(command) {
  return exec("sh", ["-c", `command -v ${command}`]).then(
    () => true,
    () => false,
  );
}

/** Installs the missing ones; says what it did. */
export async function ensureHostTools() {
  const missing = [];
  for (const [pkg, command] of Object.entries(TOOLS)) if (!(await has(command))) missing.push(pkg);
  if (missing.length === 0) return `${Object.keys(TOOLS).join(", ")} present`;
  const asRoot = `source ${JSON.stringify(join(REPO_ROOT, "tools/as-root.sh"))}`;
  await exec(
    "bash",
    [
      "-c",
      `${asRoot} && as_root apt-get update -qq && ` +
        `as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.join(" ")}`,
    ],
    { show: true },
  );
  return `installed ${missing.join(", ")}`;
}
