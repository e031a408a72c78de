// Coil's OCI image (deploy/image, `npm run image`): built with no base image pulled,
// or reused when its inputs did not change, then run with podman with the examples'
// repository (the mlp) mounted at /mnt/models, as KServe's storage initializer does.
// It answers curl over HTTP on 8080 and Python's gRPC client on 9000 with eager
// PyTorch's values, runs as its non-root user, passes its own health check, and stops
// on SIGTERM with exit code 0; the venv layer example builds over it and serves with
// its python. In every run (a cold build, the Debian root file system with torch
// included, took 7 minutes here; a cached one 12 s: deploy/image/README.md);
// COIL_E2E_IMAGE=0 leaves it out. Needs root, as `npm run image` does.
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import { installedContext, type E2eContext } from "../harness/context.js";
import { curl } from "../harness/curl.js";
import { grpcStubs } from "../harness/grpc-stubs.js";
import { buildImage, buildVenvImage, ImageContainer, IMAGE_PORTS, podman } from "../harness/image.js";
import { python } from "../harness/python.js";
import { reference as referenceFiles, type Reference } from "../harness/reference.js";
import { ensureRepository } from "../harness/repository.js";

const ENABLED = process.env["COIL_E2E_IMAGE"] !== "0";

describe.skipIf(!ENABLED)("the OCI image under podman", () => {
  let context: E2eContext;
  let image: string;
  let container: ImageContainer | undefined;
  let reference: Reference;

  beforeAll(async () => {
    context = installedContext();
    const repository = await ensureRepository(context, ["mlp"]);
    reference = referenceFiles(context);
    image = (await buildImage(context)).reference;
    container = await ImageContainer.run(image, repository, `coil-e2e-${process.pid}`);
  }, 1_800_000);

  let argsContainer: ImageContainer | undefined;
  let venvContainer: ImageContainer | undefined;
  const venvImage = `localhost/coil-venv-e2e-${process.pid}`;

  afterAll(async () => {
    await container?.remove();
    await argsContainer?.remove();
    await venvContainer?.remove();
    await podman(["rmi", "--ignore", venvImage]).catch(() => undefined);
  });

  const live = () => {
    if (!container) throw new Error("the container did not start (see beforeAll's error)");
    return container;
  };

  it("the image: coil serve /mnt/models as a non-root user, 8080 and 9000 exposed, a health check", async () => {
    const [config] = JSON.parse(await podman(["image", "inspect", image])) as {
      Config: { User: string; Entrypoint: string[]; Cmd: string[]; ExposedPorts: Record<string, unknown> };
      Healthcheck?: { Test: string[] };
    }[];
    expect(config!.Config.User).toBe("coil");
    expect(config!.Config.Entrypoint).toEqual(["/usr/bin/tini", "--", "coil", "serve", "--config", "/etc/coil/coil.json"]);
    expect(config!.Config.Cmd).toEqual(["/mnt/models"]);
    expect(Object.keys(config!.Config.ExposedPorts).sort()).toEqual([`${IMAGE_PORTS.http}/tcp`, `${IMAGE_PORTS.grpc}/tcp`]);
    expect(config!.Healthcheck?.Test.join(" ")).toContain("/v2/health/ready");
  });

  it("the server runs as uid 1000, not root", async () => {
    expect((await podman(["exec", live().name, "id", "-u"])).trim()).toBe("1000");
  });

  it("its health check passes once ready", async () => {
    // `podman healthcheck run` runs the image's HEALTHCHECK command now; exit 0 = healthy.
    await expect(podman(["healthcheck", "run", live().name])).resolves.toBeDefined();
  });

  it("HTTP: curl's JSON infer on the mlp == eager PyTorch (1e-5)", async () => {
    expect((await curl(live().url("/v2/models/mlp/ready"))).status).toBe(200);
    const response = await curl(live().url("/v2/models/mlp/infer"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      dataFile: reference.inferJson,
    });
    expect(response.status).toBe(200);
    await python("compare.py", ["json", response.bodyFile, reference.expected]);
  });

  it("gRPC: Python's client -- ServerLive, ModelInfer with raw contents == eager, unknown model NOT_FOUND", async () => {
    const output = await python("grpc_client.py", [await grpcStubs(context), `127.0.0.1:${live().grpcPort}`, reference.inputF32, reference.expected]);
    expect(JSON.parse(output)).toMatchObject({ live: true, id: "e2e-1", model: "mlp", missing: "NOT_FOUND" });
  });

  it("SIGTERM (podman stop) stops it with exit code 0 after it logged 'stopped'", async () => {
    expect(await live().stop()).toBe(0);
    expect(await live().logs()).toContain('"msg":"stopped"');
  });

  it("arguments replace CMD as KServe's args do: flags alone still serve /mnt/models (coil.json names it)", async () => {
    const repository = await ensureRepository(context, ["mlp"]);
    argsContainer = await ImageContainer.run(image, repository, `coil-e2e-args-${process.pid}`, ["--model-control", "explicit"]);
    const index = await curl(argsContainer.url("/v2/repository/index"), { method: "POST" });
    expect(index.status).toBe(200);
    // The repository holds what the suite packed so far (the mlp, and more when pack.test.ts ran first).
    const entries = index.json() as { name: string; state: string }[];
    expect(entries).toContainEqual({ name: "mlp", version: "1", state: "READY" });
    expect(entries.every((entry) => entry.state === "READY")).toBe(true);
    expect(await argsContainer.stop()).toBe(0);
  });

  it("the venv layer (examples/venv) builds over it, sets COIL_PYTHON to its python, and serves == eager", async () => {
    await buildVenvImage(venvImage);
    expect((await podman(["run", "--rm", "--entrypoint", "/opt/venv/bin/python", venvImage, "-c", "import sys, torch; print(sys.prefix)"])).trim()).toBe("/opt/venv");
    const repository = await ensureRepository(context, ["mlp"]);
    venvContainer = await ImageContainer.run(venvImage, repository, `coil-e2e-venv-${process.pid}`);
    // What the serving process inherits: the image's environment.
    expect((await podman(["exec", venvContainer.name, "printenv", "COIL_PYTHON"])).trim()).toBe("/opt/venv/bin/python");
    const response = await curl(venvContainer.url("/v2/models/mlp/infer"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      dataFile: reference.inferJson,
    });
    expect(response.status).toBe(200);
    await python("compare.py", ["json", response.bodyFile, reference.expected]);
  }, 600_000);
});
