import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { GLIBC_TUNABLE } from "@coil/native";
import { beforeAll, describe, expect, inject, it, vi } from "vitest";

import { netRepository } from "../test/net-repository.js";
import { startServe } from "../test/serve-process.js";
import { main } from "./commands.js";
import { SERVE_NODE_FLAGS } from "./reexec.js";

const PYTHON = inject("testPython");
const here = dirname(fileURLToPath(import.meta.url));
const PLUGINS = resolve(here, "../test/fixtures/plugins");
let repo: string;

beforeAll(async () => {
  repo = await netRepository(PYTHON);
}, 60_000);

describe("coil serve", () => {
  it("serves a repository over HTTP and gRPC, and drains and exits 0 on SIGTERM", async () => {
    // With the tunable already there, only the server's Node flags make the command
    // re-execute itself (pack.test.ts covers a start without the tunable).
    const env: NodeJS.ProcessEnv = { ...process.env, GLIBC_TUNABLES: GLIBC_TUNABLE };
    delete env.NODE_OPTIONS;
    // Settings and a plugin from a config file, ports and another plugin from flags
    // (a path relative to the directory the command runs in).
    const config = join(repo, "..", `coil-${Date.now()}.json`);
    writeFileSync(
      config,
      JSON.stringify({
        repository: repo,
        host: "127.0.0.1",
        interpreters: 1,
        python: PYTHON,
        httpPort: 8000,
        callerSpinUs: 0,
        plugins: [{ module: join(PLUGINS, "rest-adapter.mjs"), options: { tag: "from-config" } }],
      }),
    );
    const args = ["serve", "--config", config, "--http-port", "0", "--grpc-port", "0", "--spin-us", "20", "--plugin", "./rest-adapter.mjs"];
    const { child, logs, serving, exited } = startServe(args, { cwd: PLUGINS, env });
    const ready = await serving;
    expect(ready).toMatchObject({ interpreters: 1, backend: "cpu", grpc: expect.any(Number) });
    // The re-executed process runs with the server's Node flags.
    expect(ready.nodeFlags).toEqual(expect.arrayContaining([...SERVE_NODE_FLAGS]));
    expect(logs).toContainEqual(expect.objectContaining({ msg: "model ready", model: "net" }));
    // The hand-off knobs, one from the file and one from a flag, the rest as they were.
    expect(logs).toContainEqual(
      expect.objectContaining({ msg: "hand-off settings", handOff: { batchWhileQueued: 2, batchWindowUs: 200, spinUs: 20, maxSpinUs: 1000, callerSpinUs: 0, contentionCheckMs: 20 } }),
    );
    const base = `http://127.0.0.1:${ready.http as number}`;
    const curl = promisify(execFile);
    expect((await curl("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", `${base}/v2/health/ready`])).stdout).toBe("200");
    const body = JSON.stringify({ inputs: [{ name: "x", datatype: "FP32", shape: [1, 4], data: [1, 1, 1, 1] }] });
    const infer = JSON.parse((await curl("curl", ["-s", "-X", "POST", "-d", body, `${base}/v2/models/net/infer`])).stdout) as {
      model_name: string;
      outputs: { name: string; shape: number[] }[];
    };
    expect(infer).toMatchObject({ model_name: "net", outputs: [{ name: "y", shape: [1, 2] }] });
    // The plugins' adapters serve the same model, each with its own options.
    const adapters = ready.adapters as { name: string; url: string }[];
    expect(adapters.map((a) => a.name)).toEqual(["http", "grpc", "rest", "rest"]);
    const tags = [];
    for (const { url } of adapters.slice(2)) {
      const reply = JSON.parse((await curl("curl", ["-s", "-X", "POST", "-d", '{"x": [[1, 1, 1, 1]]}', `${url}/models/net`])).stdout) as Record<string, unknown>;
      expect(reply["y"]).toEqual([expect.any(Array)]);
      tags.push(Object.keys(reply).find((k) => k !== "y"));
    }
    expect(tags).toEqual(["from-config", "tag"]);
    child.kill("SIGTERM");
    expect((await exited).code).toBe(0);
    expect(logs.map((l) => l.msg)).toContain("stopped");
  }, 120_000);

  it("takes a negative number as a flag's value, and reports a bad flag as INVALID_ARGUMENT", async () => {
    // --grpc-port -1 (off) as the usage writes it: parsed, then refused for its missing repository.
    await expect(main(["serve", "--grpc-port", "-1"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("needs a model repository"),
    });
    await expect(main(["serve", repo, "--http-prot", "1"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/Unknown option '--http-prot'[\s\S]*usage:/),
    });
    await expect(main(["serve", repo, "--interpreters"])).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(main(["serve", repo, "--spin-us", "-5"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("spinUs must be an integer from 0"),
    });
    // Before a supervisor starts (its workers would each refuse, over and over).
    await expect(main(["serve", repo, "--dashboard", "--host", "127.0.0.1", "--http-port", "-1", "--workers", "2"])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("the dashboard is served on the HTTP port, which is off"),
    });
  });

  it("refuses a config file with an unknown setting", async () => {
    const config = join(repo, "..", `coil-bad-${Date.now()}.json`);
    writeFileSync(config, JSON.stringify({ repository: repo, httpPortt: 1 }));
    await expect(main(["serve", "--config", config])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining('unknown setting "httpPortt"'),
    });
  });
});

describe("coil <command> --help", () => {
  it("prints that command's usage and exits 0, for every command", async () => {
    const printed: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((text: string) => void printed.push(text));
    try {
      for (const command of ["pack", "inspect", "keygen", "serve"]) {
        printed.length = 0;
        expect(await main([command, "--help"])).toBe(0);
        expect(printed).toEqual([expect.stringMatching(new RegExp(`^usage:\\n  coil ${command} `))]);
        expect(printed[0]!.split("\n  coil ")).toHaveLength(2); // that command's alone
      }
      expect(await main(["serve", repo, "-h"])).toBe(0);
    } finally {
      log.mockRestore();
    }
  });
});

describe("coil serve plugins", () => {
  it("names the plugin that cannot be loaded, before starting anything", async () => {
    await expect(main(["serve", repo, "--plugin", "coil-plugin-that-is-not-installed"])).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: expect.stringContaining("could not load plugin coil-plugin-that-is-not-installed"),
    });
    await expect(main(["serve", repo, "--backend", "tpu"])).rejects.toMatchObject({
      code: "PLUGIN_FAILED",
      message: expect.stringContaining("@coil/backend-tpu"),
    });
  });

  it("refuses a config file whose plugins are not modules", async () => {
    const config = join(repo, "..", `coil-plugins-${Date.now()}.json`);
    writeFileSync(config, JSON.stringify({ repository: repo, plugins: [{ module: "x", option: {} }] }));
    await expect(main(["serve", "--config", config])).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining('"plugins" must be a list'),
    });
  });
});
