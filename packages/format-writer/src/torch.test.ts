/**
 * Compatibility with torch.package in both directions, against the torch in
 * the test Python (inject("testPython"): Debian's torch 1.13 by default, torch 2.13 on .venv-torch2).
 */
import { readFileSync, statSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openArchive } from "@coil/format-reader";
import { ArchiveWriter, generateSigningKeyPair } from "@coil/format-writer";
import { tempDir } from "../test/files.ts";
import { EXPORT_MLP, hasTorch, IMPORT_MLP, runPython } from "../test/python.ts";
import { zip64Limits } from "./zip-records.ts";

const tmp = tempDir("coil-torch-");
afterAll(() => tmp.cleanup());

interface Loaded {
  output: number[];
  module: string;
  testzip: string | null;
  names: string[];
}

/** Copies every record of `source` into a new archive, in the same order. */
async function rewrite(source: string, target: string, finish: Parameters<ArchiveWriter["finish"]>[0], root?: string): Promise<void> {
  const archive = await openArchive(source);
  const writer = await ArchiveWriter.create(target, { root: root ?? archive.root });
  for (const r of archive.records) {
    // Big records stream; small ones go as bytes.
    if (r.size > 256) await writer.addRecord(r.name, archive.readChunks(r.name, { chunkSize: 100 }), { size: r.size });
    else await writer.addRecord(r.name, await archive.readBytes(r.name));
  }
  await writer.finish(finish);
  await archive.close();
}

describe.skipIf(!hasTorch())("torch.package compatibility", () => {
  let original: string;
  let expected: number[];
  beforeAll(() => {
    original = tmp.file("exported.pt");
    expected = (JSON.parse(runPython(EXPORT_MLP, [tmp.dir, original])) as { output: number[] }).output;
  });
  afterEach(() => {
    zip64Limits.threshold = 0xffffffff;
  });

  it("reproduces PackageExporter's archive byte for byte from the same records", async () => {
    const copy = tmp.file("copy.pt");
    await rewrite(original, copy, { manifest: false });
    expect(readFileSync(copy).equals(readFileSync(original))).toBe(true);
  });

  it("writes archives that PackageImporter loads: signed, with a manifest, under another root", async () => {
    const keys = await generateSigningKeyPair();
    const target = tmp.file("coil.pt");
    await rewrite(
      original,
      target,
      {
        entryPoint: { package: "model", resource: "model.pkl" },
        inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
        outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
        signingKey: keys.privateKey,
      },
      "mlp",
    );
    const archive = await openArchive(target, { publicKey: keys.publicKey });
    expect(archive.signature).toMatchObject({ signed: true, trusted: true });
    await archive.close();

    // A fresh Python process: the class can only come from the archive's own source.
    const loaded = JSON.parse(runPython(IMPORT_MLP, [target])) as Loaded;
    expect(loaded.output).toEqual(expected);
    expect(loaded.module).toBe("<torch_package_0>.mymodels.mlp");
    expect(loaded.testzip).toBeNull();
    expect(loaded.names).toContain("mlp/.data/coil/manifest.json");
  });

  it("writes zip64 forms (as past 4 GiB) that Python's zipfile reads", async () => {
    // PackageImporter (miniz) cannot take this small stand-in: it checks a saturated
    // 32-bit header offset (0xFFFFFFFF) against the file size, which only a file
    // really past 4 GiB passes. The opt-in test below covers the real thing.
    zip64Limits.threshold = 2000;
    const target = tmp.file("zip64.pt");
    await rewrite(original, target, { entryPoint: { package: "model", resource: "model.pkl" } });
    const check = JSON.parse(
      runPython(
        String.raw`
import sys, json, zipfile, hashlib
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    infos = z.infolist()
    print(json.dumps({"testzip": bad, "zip64": [i.filename for i in infos if i.file_size >= 2000 or i.header_offset >= 2000],
                      "sha": {i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in infos}}))
`,
        [target],
      ),
    ) as { testzip: string | null; zip64: string[]; sha: Record<string, string> };
    expect(check.testzip).toBeNull();
    expect(check.zip64.length).toBeGreaterThan(3);
    const archive = await openArchive(target);
    for (const r of archive.manifest!.records) expect(check.sha[`${archive.root}/${r.name}`]).toBe(r.sha256);
    await archive.close();
  });
});

// Opt-in (COIL_SLOW_TESTS=1): writes and reads ~8.6 GB of files.
describe.skipIf(!hasTorch() || process.env["COIL_SLOW_TESTS"] !== "1")("past 4 GiB, for real", () => {
  it(
    "reproduces a >4 GiB PackageExporter archive byte for byte",
    async () => {
      const big = tmp.file("big.pt");
      runPython(
        String.raw`
import sys, torch
from torch.package import PackageExporter
with PackageExporter(sys.argv[1]) as e:
    e.save_pickle("model", "model.pkl", torch.nn.Linear(2, 2))
    e.save_pickle("model", "big.pkl", {"a": torch.zeros(2**30 + 1), "b": torch.ones(3)})
`,
        [big],
      );
      const copy = tmp.file("big-copy.pt");
      const archive = await openArchive(big, { verifyHashes: false });
      expect(archive.records.some((r) => r.size >= 2 ** 32)).toBe(true);
      expect(archive.records.some((r) => r.headerOffset >= 2 ** 32)).toBe(true);
      const writer = await ArchiveWriter.create(copy, { root: archive.root, sync: false });
      for (const r of archive.records) await writer.addRecord(r.name, archive.readChunks(r.name, { chunkSize: 8 << 20 }), { size: r.size });
      await writer.finish({ manifest: false });
      await archive.close();
      expect(statSync(copy).size).toBe(statSync(big).size);
      runPython("import sys, filecmp; sys.exit(0 if filecmp.cmp(sys.argv[1], sys.argv[2], shallow=False) else 1)", [big, copy]);
    },
    600_000,
  );
});
