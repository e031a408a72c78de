// The programs the suite drives besides `coil`: installed with apt when missing, as
// root or with sudo (tools/as-root.sh), as the bootstrap installs its own.
import { join } from "node:path";

import { PYTHON } from "./python.js";
import { run, runOk } from "./process.js";

/** Debian package -> how to tell it is there. */
const TOOLS: readonly { apt: string; probe: [string, string[]] }[] = [
  { apt: "wrk", probe: ["sh", ["-c", "command -v wrk"]] },
  { apt: "curl", probe: ["sh", ["-c", "command -v curl"]] },
  { apt: "python3-grpcio", probe: [PYTHON, ["-c", "import grpc"]] },
  { apt: "python3-grpc-tools", probe: [PYTHON, ["-c", "import grpc_tools.protoc"]] },
];

/** The Debian packages of the tools that are missing. */
export async function missingTools(): Promise<string[]> {
  const missing: string[] = [];
  for (const { apt, probe } of TOOLS) {
    const result = await run(probe[0], probe[1]).catch(() => undefined);
    if (result?.code !== 0) missing.push(apt);
  }
  return missing;
}

/** Installs the missing tools; says what it did. */
export async function installMissingTools(root: string): Promise<string> {
  const missing = await missingTools();
  if (missing.length === 0) return `${TOOLS.map((t) => t.apt).join(", ")} present`;
  const asRoot = `source ${JSON.stringify(join(root, "tools/as-root.sh"))}`;
  await runOk("bash", [
    "-c",
    `${asRoot} && as_root apt-get update -qq && ` +
      `as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing.join(" ")}`,
  ]);
  return `installed ${missing.join(", ")}`;
}
