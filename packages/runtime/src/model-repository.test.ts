import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CpuBackend } from "@coil/backend-cpu";
import { InterpreterPool, Tensor } from "@coil/core";
import { openArchive } from "@coil/format-reader";
import { beforeAll, describe, expect, inject, it } from "vitest";

import { scanRepository } from "./model-repository.js";
import { ServingRuntime } from "./serving-runtime.js";

const PYTHON = inject("testPython");
const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), "../test/fixtures");
let repo: string;

beforeAll(() => {
  // A repository as a user fills it: a stock torch.package archive named as
  // torch.package's docs name it, and things that are not models.
  repo = mkdtempSync(join(tmpdir(), "coil-stock-repo-"));
  execFileSync(PYTHON, [join(FIXTURES, "stock", "write_stock.py"), join(repo, "model.pt"), join(repo, "weights.pt")]);
  copyFileSync(join(repo, "model.pt"), join(repo, "copy.zip"));
  copyFileSync(join(repo, "model.pt"), join(repo, "bad name!.pt"));
  mkdirSync(join(repo, "versioned", "3"), { recursive: true });
  copyFileSync(join(repo, "model.pt"), join(repo, "versioned", "3", "packaged.pt"));
  writeFileSync(join(repo, "versioned", "3", "notes.txt"), "not an archive");
  mkdirSync(join(repo, "versioned", "latest"));
  writeFileSync(join(repo, "README.md"), "# models\n");
  writeFileSync(join(repo, "copy.coil"), "wins over copy.zip, broken or not");
  execFileSync("mkfifo", [join(repo, "pipe")]);
  symlinkSync("/dev/null", join(repo, "device"));
}, 60_000);

describe("the model repository", () => {
  it("serves stock torch.package archives under any name, and says why it skips everything else", async () => {
    const { entries, skipped } = await scanRepository(repo);
    expect(entries.map((e) => [e.name, e.version, e.path.slice(repo.length + 1)])).toEqual([
      ["copy", "1", "copy.coil"],
      ["model", "1", "model.pt"],
      ["versioned", "3", "versioned/3/packaged.pt"],
    ]);
    const reasons = Object.fromEntries(skipped.map((s) => [s.path.slice(repo.length + 1), s.reason]));
    expect(reasons).toEqual({
      "README.md": "not an archive (neither .coil nor a zip)",
      "bad name!.pt": expect.stringContaining("a model's name must match"),
      "copy.zip": 'model "copy" is already served from another archive',
      device: "a symbolic link out of the repository, to /dev/null: not followed (coil serve --follow-symlinks to serve it)",
      pipe: "not a regular file (a FIFO): not opened",
      "versioned/3/notes.txt": "not an archive (neither .coil nor a zip)",
      "versioned/latest": expect.stringContaining("not a version folder"),
      "weights.pt": expect.stringMatching(/not a torch\.package archive.*torch\.save checkpoint holds weights alone/),
    });
  });

  it("serves model.pt written by stock torch.package, and logs each skipped file once", async () => {
    const warnings: Record<string, unknown>[] = [];
    const pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new CpuBackend() });
    const runtime = new ServingRuntime({ pool, repository: repo, logger: { warn: (fields) => warnings.push(fields) } });
    try {
      await runtime.start();
      expect(runtime.modelIndex().find((m) => m.name === "model")).toEqual({ name: "model", version: "1", state: "READY" });
      const eager = JSON.parse(
        execFileSync(PYTHON, [
          "-c",
          "import sys, json, torch; from torch.package import PackageImporter\n" +
            "m = PackageImporter(sys.argv[1]).load_pickle('model', 'model.pkl')\n" +
            "with torch.inference_mode(): print(json.dumps(m(torch.ones(1, 4)).flatten().tolist()))",
          join(repo, "model.pt"),
        ]).toString(),
      ) as number[];
      const answer = await runtime.infer("model", undefined, { inputs: [{ name: "x", tensor: Tensor.from("float32", [1, 4], [1, 1, 1, 1]) }] });
      expect(answer.outputs[0]!.name).toBe("output__0");
      expect(Array.from(answer.outputs[0]!.tensor.data as Float32Array).map((v, i) => Math.abs(v - eager[i]!))).toEqual(
        eager.map(() => expect.closeTo(0, 5)),
      );
      await runtime.loadModel("model"); // a rescan: nothing logged twice
      expect(warnings.map((w) => String(w["path"]).slice(repo.length + 1)).sort()).toEqual(
        ["README.md", "bad name!.pt", "copy.zip", "device", "pipe", "versioned/3/notes.txt", "versioned/latest", "weights.pt"],
      );
    } finally {
      await runtime.close();
    }
  });
});

describe("the model repository in KServe's layout", () => {
  it("serves an archive straight in a model folder as version 1, as KServe's model agent lays it out", async () => {
    // The agent downloads a TrainedModel's storageUri into <repo>/<name>/ and marks it done
    // with SUCCESS.<sha256 of the model's spec> (kserve pkg/agent/downloader.go).
    const kserve = mkdtempSync(join(tmpdir(), "coil-kserve-repo-"));
    const marker = `SUCCESS.${"ab12".repeat(16)}`;
    mkdirSync(join(kserve, "agent"));
    copyFileSync(join(repo, "model.pt"), join(kserve, "agent", "model.pt"));
    writeFileSync(join(kserve, "agent", marker), '{"storageUri":"s3://models/agent/"}');
    mkdirSync(join(kserve, "both", "1"), { recursive: true });
    copyFileSync(join(repo, "model.pt"), join(kserve, "both", "1", "model.pt"));
    copyFileSync(join(repo, "model.pt"), join(kserve, "both", "loose.pt"));
    mkdirSync(join(kserve, "two"));
    copyFileSync(join(repo, "model.pt"), join(kserve, "two", "a.pt"));
    copyFileSync(join(repo, "model.pt"), join(kserve, "two", "b.coil"));

    const { entries, skipped } = await scanRepository(kserve);
    expect(entries.map((e) => [e.name, e.version, e.path.slice(kserve.length + 1)])).toEqual([
      ["agent", "1", "agent/model.pt"],
      ["both", "1", "both/1/model.pt"],
      ["two", "1", "two/b.coil"],
    ]);
    expect(Object.fromEntries(skipped.map((s) => [s.path.slice(kserve.length + 1), s.reason]))).toEqual({
      [`agent/${marker}`]: "KServe's model agent's download marker",
      "both/loose.pt": 'version 1 of "both" is served from 1/model.pt',
      "two/a.pt": 'version 1 of "two" is served from b.coil',
    });
  });
});

describe("the model repository's links and special files", () => {
  it("follows links inside the repository, skips links out of it unless told to follow them", async () => {
    const outside = mkdtempSync(join(tmpdir(), "coil-outside-"));
    copyFileSync(join(repo, "model.pt"), join(outside, "elsewhere.pt"));
    mkdirSync(join(outside, "folder", "1"), { recursive: true });
    copyFileSync(join(repo, "model.pt"), join(outside, "folder", "1", "model.pt"));
    const linked = mkdtempSync(join(tmpdir(), "coil-links-repo-"));
    copyFileSync(join(repo, "model.pt"), join(linked, "real.pt"));
    symlinkSync(join(linked, "real.pt"), join(linked, "inside.pt"));
    symlinkSync(join(outside, "elsewhere.pt"), join(linked, "outside.pt"));
    symlinkSync(join(outside, "folder"), join(linked, "folder"));
    mkdirSync(join(linked, "versioned", "1"), { recursive: true });
    symlinkSync(join(outside, "elsewhere.pt"), join(linked, "versioned", "1", "model.pt"));
    symlinkSync(join(linked, "missing.pt"), join(linked, "dangling.pt"));

    const confined = await scanRepository(linked);
    expect(confined.entries.map((e) => e.name)).toEqual(["inside", "real"]);
    const reasons = Object.fromEntries(confined.skipped.map((s) => [s.path.slice(linked.length + 1), s.reason]));
    expect(reasons).toEqual({
      "dangling.pt": "a symbolic link to nothing (or to something unreadable)",
      folder: expect.stringMatching(/^a symbolic link out of the repository, to .*coil-outside-.*folder: not followed \(coil serve --follow-symlinks/),
      "outside.pt": expect.stringContaining("a symbolic link out of the repository"),
      "versioned/1/model.pt": expect.stringContaining("a symbolic link out of the repository"),
    });

    const followed = await scanRepository(linked, { followSymlinks: true });
    expect(followed.entries.map((e) => `${e.name}/${e.version}`)).toEqual(["folder/1", "inside/1", "outside/1", "real/1", "versioned/1"]);
  });

  it("skips FIFOs without opening them: start-up completes, and a load of one does not hang", async () => {
    const special = mkdtempSync(join(tmpdir(), "coil-fifo-repo-"));
    copyFileSync(join(repo, "model.pt"), join(special, "model.pt"));
    execFileSync("mkfifo", [join(special, "trap.coil"), join(special, "trap.pt")]);
    mkdirSync(join(special, "piped", "1"), { recursive: true });
    execFileSync("mkfifo", [join(special, "piped", "1", "model.coil")]);
    symlinkSync(join(special, "trap.coil"), join(special, "alias.coil"));
    const warnings: Record<string, unknown>[] = [];
    const pool = await InterpreterPool.create({ size: 1, python: PYTHON, backend: new CpuBackend() });
    const runtime = new ServingRuntime({ pool, repository: special, logger: { warn: (fields) => warnings.push(fields) } });
    try {
      // A timeout of the test's own: a FIFO opened for reading waits for a writer forever.
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error("start-up hung on a FIFO")), 30_000)));
      await Promise.race([runtime.start(), hung]).finally(() => clearTimeout(timer));
      expect(runtime.modelIndex()).toEqual([{ name: "model", version: "1", state: "READY" }]);
      const fifo = "not a regular file (a FIFO): not opened";
      expect(Object.fromEntries(warnings.map((w) => [String(w["path"]).slice(special.length + 1), w["reason"]]))).toEqual({
        "alias.coil": fifo,
        "piped/1/model.coil": fifo,
        "trap.coil": fifo,
        "trap.pt": fifo,
      });
      await expect(runtime.loadModel("trap")).rejects.toMatchObject({ code: "MODEL_NOT_FOUND" });
      // And should a FIFO take an archive's place after the scan, opening it fails at once.
      await expect(openArchive(join(special, "trap.coil"))).rejects.toMatchObject({ message: expect.stringContaining("is not a regular file") });
    } finally {
      await runtime.close();
    }
  }, 60_000);
});
