// Coil's OCI image (deploy/image) for the image test: built, or reused when its
// inputs did not change, from the tarballs the global setup packed; then run with
// podman (deploy/image/podman: the project's containers settings) as a user runs it,
// a model repository mounted at /mnt/models, its ports published on loopback.
import { join } from "node:path";

import type { E2eContext } from "./context.js";
import { ROOT } from "./paths.js";
import { childEnv, run, runOk, tail } from "./process.js";
import { curl } from "./curl.js";
import { freePort } from "./server.js";

export const PODMAN = join(ROOT, "deploy/image/podman");
const BUILD = join(ROOT, "deploy/image/build.mjs");
/** Where the image serves inside (deploy/image/coil.json) and what it serves. */
export const IMAGE_PORTS = { http: 8080, grpc: 9000 };
const READY_TIMEOUT_MS = 300_000;

/** `node deploy/image/build.mjs --tarballs <the setup's>`; the image's reference
 * (localhost/coil:<inputs hash>) and what the build printed. */
export async function buildImage(context: E2eContext): Promise<{ reference: string; log: string }> {
  const result = await run("node", [BUILD, "--tarballs", join(context.work, "tarballs")], { cwd: ROOT, env: childEnv() });
  const log = result.stderr;
  if (result.code !== 0) throw new Error(`npm run image failed:\n${tail(result.stdout + log, 60)}`);
  return { reference: result.stdout.trim().split("\n").at(-1)!, log };
}

/** `podman build --format docker` of the venv layer example (deploy/image/examples/venv,
 * FROM localhost/coil:latest) as `tag`. */
export async function buildVenvImage(tag: string): Promise<void> {
  await podman(["build", "--format", "docker", "-t", tag, join(ROOT, "deploy/image/examples/venv")]);
}

/** `podman ...` with the project's settings; its stdout. */
export function podman(args: readonly string[]): Promise<string> {
  return runOk(PODMAN, args);
}

export class ImageContainer {
  private constructor(
    readonly name: string,
    readonly httpPort: number,
    readonly grpcPort: number,
  ) {}

  /** `podman run -d` of `reference` with `repository` mounted read-only at /mnt/models
   * (`args`, if any, replace the image's CMD); resolves once GET /v2/health/ready
   * answers 200 on the published HTTP port, rejects with the container's log if it
   * exits first or is not ready in time. */
  static async run(reference: string, repository: string, name: string, args: readonly string[] = []): Promise<ImageContainer> {
    const httpPort = await freePort();
    let grpcPort = await freePort();
    while (grpcPort === httpPort) grpcPort = await freePort();
    await podman([
      "run", "-d", "--name", name,
      "-p", `127.0.0.1:${httpPort}:${IMAGE_PORTS.http}`,
      "-p", `127.0.0.1:${grpcPort}:${IMAGE_PORTS.grpc}`,
      "-v", `${repository}:/mnt/models:ro`,
      reference,
      ...args,
    ]);
    const container = new ImageContainer(name, httpPort, grpcPort);
    await container.waitReady();
    return container;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.httpPort}${path}`;
  }

  /** podman inspect's State of the container. */
  async state(): Promise<{ Running: boolean; ExitCode: number; Status: string }> {
    return JSON.parse(await podman(["inspect", "--format", "{{json .State}}", this.name])) as { Running: boolean; ExitCode: number; Status: string };
  }

  async logs(): Promise<string> {
    const result = await run(PODMAN, ["logs", this.name]);
    return result.stdout + result.stderr;
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if ((await curl(this.url("/v2/health/ready"))).status === 200) return;
      if (!(await this.state()).Running) throw new Error(`the container exited before it was ready:\n${tail(await this.logs(), 60)}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    throw new Error(`the container was not ready in ${READY_TIMEOUT_MS / 1000} s:\n${tail(await this.logs(), 60)}`);
  }

  /** `podman stop` (SIGTERM, then SIGKILL after `seconds`); the exit code. */
  async stop(seconds = 30): Promise<number> {
    await podman(["stop", "-t", String(seconds), this.name]);
    return (await this.state()).ExitCode;
  }

  /** Removes the container (stopped or not). */
  async remove(): Promise<void> {
    await run(PODMAN, ["rm", "-f", this.name]);
  }
}
