import { createHash, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, MANIFEST_RECORD, openArchive, SIGNATURE_RECORD } from "@coil/format-reader";
import { expectCoilError, tempDir } from "../test/files.ts";
import { EXPORT_MLP, hasTorch, runPython } from "../test/python.ts";
import { buildTorchArchive } from "../test/zip-builder.ts";

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const keys = generateKeyPairSync("ed25519");
const otherKeys = generateKeyPairSync("ed25519");

describe("openArchive on a valid archive", () => {
  it("exposes the root, records with aligned in-place offsets, modules, storages, externs and versions", async () => {
    const built = buildTorchArchive({ externs: ["torch", "collections"] });
    const path = tmp.file("plain.pt", built.bytes);
    const archive = await openArchive(path);
    try {
      expect(archive.root).toBe("model");
      expect(archive.path).toBe(path);
      expect(archive.fileSize).toBe(built.bytes.length);
      expect(archive.zip64).toBe(true);
      expect(archive.records.map((r) => r.name)).toEqual([
        ".data/0.storage",
        "model/model.pkl",
        "mymodels/__init__.py",
        "mymodels/mlp.py",
        ".data/extern_modules",
        ".data/python_version",
        ".data/version",
      ]);
      for (const [i, record] of archive.records.entries()) {
        expect(record.offset % 64).toBe(0);
        expect(record.offset).toBe(built.entries[i]!.dataOffset);
        expect(record.headerOffset).toBe(built.entries[i]!.headerOffset);
        // The offset really is where the bytes are: what a caller would map.
        const direct = built.bytes.subarray(record.offset, record.offset + record.size);
        expect(Buffer.compare(direct, await archive.readBytes(record.name))).toBe(0);
      }
      expect(archive.modules).toEqual([
        { module: "mymodels", isPackage: true, record: "mymodels/__init__.py" },
        { module: "mymodels.mlp", isPackage: false, record: "mymodels/mlp.py" },
      ]);
      expect(archive.storages).toEqual([
        { key: "0", record: ".data/0.storage", offset: archive.record(".data/0.storage")!.offset, size: 16 },
      ]);
      expect(archive.pickles).toEqual(["model/model.pkl"]);
      expect(archive.externs).toEqual(["torch", "collections"]);
      expect(archive.version).toBe(6);
      expect(archive.pythonVersion).toBe("3.11.2");
      expect(archive.manifest).toBeUndefined();
      expect(archive.signature).toEqual({ signed: false });
      expect(await archive.readText("mymodels/mlp.py")).toBe("class MLP: pass\n");
      expect(archive.has("nope")).toBe(false);
      await expectCoilError(archive.readBytes("nope"), "INVALID_ARGUMENT");
    } finally {
      await archive.close();
    }
  });

  it("streams a record with readChunks and checks it at the end", async () => {
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const path = tmp.file("chunks.pt", buildTorchArchive({ records: [["model/model.pkl", "p"], [".data/7.storage", big]], manifest: true }).bytes);
    const archive = await openArchive(path);
    const chunks: Buffer[] = [];
    for await (const chunk of archive.readChunks(".data/7.storage", { chunkSize: 65536 })) chunks.push(chunk);
    expect(chunks.length).toBe(5);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    await expectCoilError(archive.readBytes(".data/7.storage", { maxBytes: 1000 }), "ARCHIVE_TOO_LARGE");
    await archive.close();
    await expectCoilError(archive.readBytes(".data/7.storage"), "CLOSED");
  });

  it("parses the manifest and verifies a signature against a trusted key", async () => {
    const path = tmp.file("signed.pt", buildTorchArchive({ manifest: { metadata: { b: "2", a: "1" } }, signingKey: keys.privateKey }).bytes);
    const archive = await openArchive(path, { publicKey: keys.publicKey });
    expect(archive.manifest?.entryPoint).toEqual({ package: "model", resource: "model.pkl" });
    expect(archive.manifest?.inputs).toEqual([{ name: "x", dtype: "float32", shape: [-1, 4] }]);
    expect(archive.manifest?.metadata).toEqual({ a: "1", b: "2" });
    expect(archive.manifest?.records.map((r) => r.name)).not.toContain(MANIFEST_RECORD);
    const fp = `sha256:${createHash("sha256").update(keys.publicKey.export({ format: "der", type: "spki" }).subarray(-32)).digest("hex")}`;
    expect(archive.signature).toMatchObject({ signed: true, verified: true, trusted: true, keyFingerprint: fp });
    expect(archive.manifestBytes?.equals(await archive.readBytes(MANIFEST_RECORD))).toBe(true);
    await archive.close();

    // Without a trusted key it still verifies, but says the signer is not known to be trusted.
    const untrusted = await openArchive(path, { requireSignature: true });
    expect(untrusted.signature).toMatchObject({ signed: true, trusted: false, keyFingerprint: fp });
    await untrusted.close();
    // PEM and arrays of keys work too.
    const pem = keys.publicKey.export({ format: "pem", type: "spki" }).toString();
    await (await openArchive(path, { publicKey: [otherKeys.publicKey, pem] })).close();
  });

  it("refuses a trusted-key or required signature the archive lacks, and untrusted signers", async () => {
    const unsigned = tmp.file("unsigned.pt", buildTorchArchive({ manifest: true }).bytes);
    const plain = tmp.file("plain2.pt", buildTorchArchive().bytes);
    const signed = tmp.file("signed2.pt", buildTorchArchive({ manifest: true, signingKey: keys.privateKey }).bytes);
    await expectCoilError(openArchive(unsigned, { requireSignature: true }), "ARCHIVE_UNSIGNED");
    await expectCoilError(openArchive(unsigned, { publicKey: keys.publicKey }), "ARCHIVE_UNSIGNED");
    await expectCoilError(openArchive(plain, { requireSignature: true }), "ARCHIVE_UNSIGNED");
    await expectCoilError(openArchive(plain, { requireManifest: true }), "ARCHIVE_INVALID", /manifest/);
    await expectCoilError(openArchive(signed, { publicKey: otherKeys.publicKey }), "ARCHIVE_SIGNATURE_INVALID", /untrusted/);
    await expectCoilError(openArchive(signed, { publicKey: "not a key" }), "INVALID_ARGUMENT");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    await expectCoilError(openArchive(signed, { publicKey: rsa.publicKey }), "INVALID_ARGUMENT", /ed25519/);
  });

  it("rejects bad options and unopenable paths as INVALID_ARGUMENT", async () => {
    await expectCoilError(openArchive(tmp.file("missing.pt")), "INVALID_ARGUMENT");
    await expectCoilError(openArchive(tmp.dir), "INVALID_ARGUMENT");
    const path = tmp.file("ok.pt", buildTorchArchive().bytes);
    await expectCoilError(openArchive(path, { limits: { maxRecords: 0 } }), "INVALID_ARGUMENT");
    await expectCoilError(openArchive(path, { limits: { maxNameLength: 1.5 } }), "INVALID_ARGUMENT");
    expect(DEFAULT_LIMITS.maxRecords).toBeGreaterThan(1000);
  });

  it("names the file in error details", async () => {
    const path = tmp.file("junk.pt", Buffer.from("definitely not a zip file, just some text"));
    const err = (await expectCoilError(openArchive(path), "ARCHIVE_INVALID")) as Error & { details?: unknown };
    expect(err.message).toMatch(/end-of-central-directory/);
    expect(err.details).toEqual({ path });
    const unaligned = tmp.file("unaligned.pt", buildTorchArchive({ options: { align: false } }).bytes);
    const err2 = (await expectCoilError(openArchive(unaligned), "ARCHIVE_INVALID")) as Error & { details?: unknown };
    expect(err2.details).toMatchObject({ path: unaligned, record: "model/.data/0.storage", dataOffset: 55 });
    expect(SIGNATURE_RECORD).toBe(".data/coil/signature");
  });
});

describe.skipIf(!hasTorch())("an archive written by torch.package.PackageExporter", () => {
  let path: string;
  let expected: { torch: string; records: Array<{ name: string; headerOffset: number; offset: number; size: number; crc32: number; method: number; extra: string }> };
  beforeAll(() => {
    path = tmp.file("torch.pt");
    expected = JSON.parse(runPython(EXPORT_MLP, [tmp.dir, path])) as typeof expected;
  });

  it("opens, and lists exactly what Python's zipfile sees", async () => {
    const archive = await openArchive(path);
    try {
      expect(archive.root).toBe("torch");
      expect(archive.records.map((r) => ({ name: `torch/${r.name}`, headerOffset: r.headerOffset, offset: r.offset, size: r.size, crc32: r.crc32 }))).toEqual(
        expected.records.map(({ name, headerOffset, offset, size, crc32 }) => ({ name, headerOffset, offset, size, crc32 })),
      );
      // torch 1.13 and 2.13 write these records stored, each padded with an "FB" extra field to 64 bytes.
      for (const r of expected.records) {
        expect(r.method).toBe(0);
        expect(r.extra.slice(0, 4)).toBe("4642"); // "FB"
        expect(r.offset % 64).toBe(0);
      }
      const names = archive.records.map((r) => r.name);
      expect(names).toEqual(
        expect.arrayContaining([
          ".data/version",
          ".data/extern_modules",
          ".data/python_version",
          "model/model.pkl",
          "model/notes.txt",
          "mymodels/mlp.py",
        ]),
      );
      // torch's stream writer adds two records from torch 2.1 on (seen here: 1.13 writes
      // neither, 2.13 both); the reader lists them like any other record.
      const [major, minor] = expected.torch.split(".").map(Number) as [number, number];
      if (major > 2 || (major === 2 && minor >= 1)) {
        expect(names).toEqual(expect.arrayContaining(["byteorder", ".data/serialization_id"]));
        expect(await archive.readText("byteorder")).toBe("little");
      } else {
        expect(names).not.toContain("byteorder");
        expect(names).not.toContain(".data/serialization_id");
      }
      // PackageExporter writes only the modules the pickle needs (not the parent package's __init__).
      expect(archive.modules).toEqual([{ module: "mymodels.mlp", isPackage: false, record: "mymodels/mlp.py" }]);
      expect(archive.storages.map((s) => s.key).sort()).toEqual(["0", "1", "2", "3"]);
      expect(archive.storages.every((s) => s.offset % 64 === 0)).toBe(true);
      expect(archive.externs).toContain("torch.nn.modules.linear");
      expect(archive.version).toBe(6);
      expect(archive.pythonVersion).toMatch(/^3\.\d+\.\d+/);
      expect(await archive.readText("model/notes.txt")).toBe("hello");
      expect(await archive.readText("mymodels/mlp.py")).toMatch(/^import torch\n/);
      // A storage's bytes at its offset are the float32 weights.
      const weights = await archive.readBytes(archive.storages[0]!.record);
      expect(weights.length % 4).toBe(0);
      expect(readFileSync(path).subarray(archive.storages[0]!.offset, archive.storages[0]!.offset + weights.length).equals(weights)).toBe(true);
    } finally {
      await archive.close();
    }
  });
});
