import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { crc32 } from "node:zlib";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { isCoilError } from "@coil/errors";
import { MANIFEST_RECORD, openArchive, SIGNATURE_RECORD, type Archive } from "@coil/format-reader";
import { ArchiveWriter, generateSigningKeyPair, type FinishOptions } from "@coil/format-writer";
import { expectCoilError, tempDir } from "../test/files.ts";
import { zip64Limits } from "./zip-records.ts";

const tmp = tempDir("coil-writer-");
afterAll(() => tmp.cleanup());
let counter = 0;
const nextPath = (): string => tmp.file(`archive-${++counter}.coil`);

const weights = Buffer.from(new Float32Array(Array.from({ length: 1000 }, (_, i) => Math.sin(i))).buffer);
const finishOptions: FinishOptions = {
  entryPoint: { package: "model", resource: "model.pkl" },
  inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
  outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
  metadata: { name: "demo", version: "1" },
  distributions: [{ name: "Pillow", version: "9.4.0", modules: ["PIL"] }],
  externModules: ["torch", "collections"],
  pythonVersion: "3.11.2",
};

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  // Reuses one buffer between chunks, as a careless producer might.
  const scratch = Buffer.alloc(size);
  for (let i = 0; i < bytes.length; i += size) {
    const n = bytes.copy(scratch, 0, i, i + size);
    yield scratch.subarray(0, n);
  }
}

/** A small archive in torch.package's layout; the same calls every time. */
async function writeSample(path: string, extra: Partial<FinishOptions> = {}): Promise<void> {
  const w = await ArchiveWriter.create(path);
  await w.addStorage("0", chunked(weights, 1000), { size: weights.length });
  await w.addStorage("1", [Buffer.from([1, 2]), new Uint8Array([3, 4])], { size: 4 });
  await w.addResource("model", "model.pkl", Buffer.from("pickle bytes"));
  await w.addSource("mymodels", "", { isPackage: true });
  await w.addSource("mymodels.mlp", "class MLP: pass\n");
  await w.addRecord("assets/empty.bin", new Uint8Array(0));
  await w.finish({ ...finishOptions, ...extra });
}

describe("ArchiveWriter → openArchive round trip", () => {
  it("writes every kind of record, aligned, and reads them back with manifest and hashes", async () => {
    const path = nextPath();
    await writeSample(path);
    const archive = await openArchive(path, { requireManifest: true });
    try {
      expect(archive.root).toBe("model");
      expect(archive.records.map((r) => r.name)).toEqual([
        ".data/0.storage",
        ".data/1.storage",
        "model/model.pkl",
        "mymodels/__init__.py",
        "mymodels/mlp.py",
        "assets/empty.bin",
        ".data/extern_modules",
        ".data/python_version",
        ".data/version",
        MANIFEST_RECORD,
      ]);
      expect(archive.records.every((r) => r.offset % 64 === 0)).toBe(true);
      expect((await archive.readBytes(".data/0.storage")).equals(weights)).toBe(true);
      expect([...(await archive.readBytes(".data/1.storage"))]).toEqual([1, 2, 3, 4]);
      expect((await archive.readBytes("assets/empty.bin")).length).toBe(0);
      expect(archive.storages.map((s) => [s.key, s.size])).toEqual([
        ["0", 4000],
        ["1", 4],
      ]);
      expect(archive.modules.map((m) => [m.module, m.isPackage])).toEqual([
        ["mymodels", true],
        ["mymodels.mlp", false],
      ]);
      expect(archive.externs).toEqual(["torch", "collections"]);
      expect(archive.pythonVersion).toBe("3.11.2");
      expect(archive.version).toBe(6);
      expect(await archive.readText(".data/extern_modules")).toBe("torch\ncollections\n");
      const manifest = archive.manifest!;
      expect(manifest.entryPoint).toEqual(finishOptions.entryPoint);
      expect(manifest.inputs).toEqual(finishOptions.inputs);
      expect(manifest.outputs).toEqual(finishOptions.outputs);
      expect(manifest.metadata).toEqual(finishOptions.metadata);
      expect(manifest.distributions).toEqual(finishOptions.distributions);
      expect(manifest.records.map((r) => r.name)).toEqual(archive.records.slice(0, -1).map((r) => r.name));
      const storage = manifest.records[0]!;
      expect(storage).toEqual({ name: ".data/0.storage", size: 4000, sha256: createHash("sha256").update(weights).digest("hex") });
      // The storage's bytes are at its offset in the file: a caller can map them in place.
      const file = readFileSync(path);
      const s0 = archive.storages[0]!;
      expect(file.subarray(s0.offset, s0.offset + s0.size).equals(weights)).toBe(true);
      expect(archive.signature).toEqual({ signed: false });
    } finally {
      await archive.close();
    }
  });

  it("returns what it wrote from finish, and the file appears only then", async () => {
    const path = nextPath();
    const w = await ArchiveWriter.create(path, { root: "pkg" });
    const rec = await w.addResource("model", "model.pkl", Buffer.from("abc"));
    expect(rec).toEqual({
      name: "model/model.pkl",
      offset: rec.offset,
      size: 3,
      crc32: crc32(Buffer.from("abc")) >>> 0,
      sha256: createHash("sha256").update("abc").digest("hex"),
    });
    expect(rec.offset % 64).toBe(0);
    expect(existsSync(path)).toBe(false);
    const summary = await w.finish({ entryPoint: { package: "model", resource: "model.pkl" } });
    expect(existsSync(path)).toBe(true);
    expect(summary.root).toBe("pkg");
    expect(summary.size).toBe(readFileSync(path).length);
    expect(summary.records.map((r) => r.name)).toEqual(["model/model.pkl", ".data/extern_modules", ".data/version", MANIFEST_RECORD]);
    expect(summary.manifest?.records.length).toBe(3);
    expect(summary.keyFingerprint).toBeUndefined();
    const archive = await openArchive(path);
    expect(archive.root).toBe("pkg");
    expect(archive.externs).toEqual([]);
    expect(archive.pythonVersion).toBeUndefined();
    await archive.close();
    await expectCoilError(w.addRecord("late", Buffer.alloc(1)), "CLOSED");
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  it("is deterministic: the same records in the same order give identical bytes", async () => {
    const a = nextPath();
    const b = nextPath();
    await writeSample(a);
    await writeSample(b);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    // Signed too: ed25519 signatures are deterministic.
    const { privateKey } = await generateSigningKeyPair();
    const c = nextPath();
    const d = nextPath();
    await writeSample(c, { signingKey: privateKey });
    await writeSample(d, { signingKey: privateKey });
    expect(readFileSync(c).equals(readFileSync(d))).toBe(true);
  });

  it("runs overlapping calls one after another, in call order", async () => {
    const path = nextPath();
    const w = await ArchiveWriter.create(path);
    const names = Array.from({ length: 20 }, (_, i) => `data/${i}.bin`);
    await Promise.all([
      ...names.map((n, i) => w.addRecord(n, chunked(Buffer.alloc(100 * i, i), 7), { size: 100 * i })),
      w.addResource("model", "model.pkl", Buffer.from("p")),
    ]);
    await w.finish({ entryPoint: { package: "model", resource: "model.pkl" } });
    const archive = await openArchive(path);
    expect(archive.records.slice(0, 21).map((r) => r.name)).toEqual([...names, "model/model.pkl"]);
    expect((await archive.readBytes("data/7.bin")).equals(Buffer.alloc(700, 7))).toBe(true);
    await archive.close();
  });

  it("keeps records the caller added itself instead of writing them again", async () => {
    const path = nextPath();
    const w = await ArchiveWriter.create(path);
    await w.addRecord(".data/version", Buffer.from("3\n"));
    await w.addRecord(".data/extern_modules", Buffer.from("numpy\n"));
    await w.addResource("model", "model.pkl", Buffer.from("p"));
    await w.finish({ entryPoint: { package: "model", resource: "model.pkl" }, externModules: ["ignored"], fileFormatVersion: 9 });
    const archive = await openArchive(path);
    expect(archive.version).toBe(3);
    expect(archive.externs).toEqual(["numpy"]);
    await archive.close();
  });
});

describe("validation", () => {
  const opened: ArchiveWriter[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((w) => w.abort()));
  });
  const open = async (): Promise<ArchiveWriter> => {
    const w = await ArchiveWriter.create(nextPath());
    opened.push(w);
    return w;
  };

  it("refuses bad record names and duplicates, and stays usable", async () => {
    const w = await open();
    const bad = ["", "../x", "a/../../x", "/abs", "a\\b", "a//b", "dir/", "./x", "C:/x", "a\u0000b", ".data/coil/manifest.json", ".data/coil/x", "x".repeat(600)];
    for (const name of bad) await expectCoilError(w.addRecord(name, Buffer.alloc(1)), "INVALID_ARGUMENT");
    await w.addRecord("ok.txt", Buffer.from("ok"));
    await expectCoilError(w.addRecord("ok.txt", Buffer.from("again")), "INVALID_ARGUMENT", /already added/);
    await expectCoilError(w.addSource("not-a-module", "x"), "INVALID_ARGUMENT");
    await expectCoilError(w.addResource("bad package", "x", Buffer.alloc(0)), "INVALID_ARGUMENT");
    await expectCoilError(w.addStorage("a/b", Buffer.alloc(0)), "INVALID_ARGUMENT");
    await expectCoilError(w.addRecord("x", "string" as unknown as Uint8Array), "INVALID_ARGUMENT");
    await expectCoilError(w.addRecord("x", [Buffer.alloc(1)]), "INVALID_ARGUMENT", /size is required/);
    await expectCoilError(w.addRecord("x", Buffer.alloc(2), { size: 3 }), "INVALID_ARGUMENT");
    expect(w.records.map((r) => r.name)).toEqual(["ok.txt"]);
    await expectCoilError(ArchiveWriter.create(nextPath(), { root: "a/b" }), "INVALID_ARGUMENT");
    await expectCoilError(ArchiveWriter.create(nextPath(), { root: ".." }), "INVALID_ARGUMENT");
    await expectCoilError(ArchiveWriter.create(tmp.file("no/such/dir/x.coil")), "INVALID_ARGUMENT");
  });

  it("rolls back a streamed record whose size was wrong, or whose source failed", async () => {
    const path = nextPath();
    const w = await ArchiveWriter.create(path);
    await w.addRecord("a.bin", Buffer.from("a"));
    await expectCoilError(w.addRecord("short.bin", [Buffer.alloc(10)], { size: 20 }), "INVALID_ARGUMENT", /add up to 10/);
    await expectCoilError(w.addRecord("long.bin", [Buffer.alloc(10), Buffer.alloc(20)], { size: 20 }), "INVALID_ARGUMENT", /exceed/);
    await expectCoilError(w.addRecord("chunks.bin", [42 as unknown as Uint8Array], { size: 1 }), "INVALID_ARGUMENT", /Uint8Array/);
    const failing = (async function* () {
      yield Buffer.alloc(5);
      throw new Error("producer died");
    })();
    const err = await w.addRecord("failing.bin", failing, { size: 10 }).catch((e: unknown) => e);
    expect(isCoilError(err, "INTERNAL")).toBe(true);
    await w.addResource("model", "model.pkl", Buffer.from("p"));
    await w.finish({ entryPoint: { package: "model", resource: "model.pkl" } });
    const archive = await openArchive(path);
    expect(archive.records.map((r) => r.name).slice(0, 2)).toEqual(["a.bin", "model/model.pkl"]);
    await archive.close();
  });

  it("refuses invalid finish options, leaving the writer open", async () => {
    const w = await open();
    await w.addResource("model", "model.pkl", Buffer.from("p"));
    await expectCoilError(w.finish(), "INVALID_ARGUMENT", /entryPoint/);
    await expectCoilError(w.finish({ entryPoint: { package: "model", resource: "other.pkl" } }), "INVALID_ARGUMENT", /was not added/);
    const ep = finishOptions.entryPoint!;
    await expectCoilError(w.finish({ entryPoint: ep, inputs: [{ name: "x", dtype: "complex" as "float32", shape: [1] }] }), "INVALID_ARGUMENT", /dtype/);
    await expectCoilError(w.finish({ entryPoint: ep, outputs: [{ name: "y", dtype: "float32", shape: [-3] }] }), "INVALID_ARGUMENT", /-1/);
    await expectCoilError(w.finish({ entryPoint: ep, externModules: ["bad name"] }), "INVALID_ARGUMENT");
    await expectCoilError(w.finish({ entryPoint: ep, distributions: [{ name: "x", version: "", modules: [] }] }), "INVALID_ARGUMENT", /version/);
    await expectCoilError(w.finish({ entryPoint: ep, pythonVersion: "3.11\n" }), "INVALID_ARGUMENT");
    await expectCoilError(w.finish({ entryPoint: ep, fileFormatVersion: 0 }), "INVALID_ARGUMENT");
    await expectCoilError(w.finish({ manifest: false, signingKey: (await generateSigningKeyPair()).privateKey }), "INVALID_ARGUMENT");
    await expectCoilError(w.finish({ entryPoint: ep, signingKey: (await generateSigningKeyPair()).publicKey }), "INVALID_ARGUMENT");
    await expectCoilError(w.finish({ entryPoint: ep, signingKey: generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey }), "INVALID_ARGUMENT", /ed25519/);
    const summary = await w.finish({ entryPoint: ep });
    expect(summary.manifest?.entryPoint).toEqual(ep);
  });

  it("abort removes the partial file", async () => {
    const path = nextPath();
    const w = await ArchiveWriter.create(path);
    await w.addRecord("a.bin", Buffer.alloc(1000));
    expect(readdirSync(tmp.dir).some((f) => f.endsWith(".partial"))).toBe(true);
    await w.abort();
    await w.abort();
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(tmp.dir).some((f) => f.endsWith(".partial"))).toBe(false);
    await expectCoilError(w.finish({ manifest: false }), "CLOSED");
  });
});

describe("signatures and tampering", () => {
  async function signed(): Promise<{ path: string; publicKey: string }> {
    const keys = await generateSigningKeyPair();
    expect(keys.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(keys.privateKey).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const path = nextPath();
    await writeSample(path, { signingKey: keys.privateKey });
    return { path, publicKey: keys.publicKey };
  }

  /** Flips a byte of a record's data and, like a careful attacker, fixes up its CRC-32 everywhere. */
  function tamper(path: string, archive: Archive, name: string, edit: (data: Buffer) => void): string {
    const file = Buffer.from(readFileSync(path));
    const r = archive.record(name)!;
    const data = file.subarray(r.offset, r.offset + r.size);
    edit(data);
    const crc = crc32(data) >>> 0;
    // Descriptor right after the data; central entry found by scanning for the name.
    file.writeUInt32LE(crc, r.offset + r.size + 4);
    const cdName = Buffer.from(`${archive.root}/${name}`);
    for (let at = file.indexOf(cdName, r.offset + r.size); at >= 0; at = file.indexOf(cdName, at + 1)) {
      if (file.readUInt32LE(at - 46) === 0x02014b50) file.writeUInt32LE(crc, at - 46 + 16);
    }
    const out = `${path}.tampered-${++counter}`;
    writeFileSync(out, file);
    return out;
  }

  it("verifies with the signer's key, and KeyObjects work as well as PEM", async () => {
    const { path, publicKey } = await signed();
    const archive = await openArchive(path, { publicKey });
    expect(archive.signature).toMatchObject({ signed: true, verified: true, trusted: true });
    expect(archive.records.at(-1)!.name).toBe(SIGNATURE_RECORD);
    await archive.close();
    const keys = generateKeyPairSync("ed25519");
    const other = nextPath();
    await writeSample(other, { signingKey: keys.privateKey });
    await (await openArchive(other, { publicKey: keys.publicKey })).close();
  });

  it("a tampered record fails its hash, even with its CRC fixed up", async () => {
    const { path, publicKey } = await signed();
    const archive = await openArchive(path, { publicKey });
    const naive = Buffer.from(readFileSync(path));
    naive[archive.record(".data/0.storage")!.offset + 5]! ^= 0x40;
    const naivePath = `${path}.naive`;
    writeFileSync(naivePath, naive);
    await expectCoilError(openArchive(naivePath, { publicKey }), "ARCHIVE_HASH_MISMATCH", /CRC-32/);
    const careful = tamper(path, archive, ".data/0.storage", (d) => (d[5]! ^= 0x40));
    const err = await expectCoilError(openArchive(careful, { publicKey }), "ARCHIVE_HASH_MISMATCH", /SHA-256/);
    expect((err as { details?: Record<string, unknown> }).details).toMatchObject({ record: ".data/0.storage" });
    // Skipping the open-time hashes still catches it when the record is read.
    const lazy = await openArchive(careful, { publicKey, verifyHashes: false });
    await expectCoilError(lazy.readBytes(".data/0.storage"), "ARCHIVE_HASH_MISMATCH", /SHA-256/);
    const chunks = async (): Promise<void> => {
      for await (const _ of lazy.readChunks(".data/0.storage", { chunkSize: 1000 })) void _;
    };
    await expectCoilError(chunks(), "ARCHIVE_HASH_MISMATCH");
    await lazy.close();
    await archive.close();
  });

  it("a tampered manifest or a wrong key fails the signature; unsigned fails when one is required", async () => {
    const { path, publicKey } = await signed();
    const archive = await openArchive(path, { publicKey });
    const forged = tamper(path, archive, MANIFEST_RECORD, (d) => d.write("float64", d.indexOf("float32")));
    await expectCoilError(openArchive(forged, { publicKey }), "ARCHIVE_SIGNATURE_INVALID", /does not verify/);
    await expectCoilError(openArchive(forged), "ARCHIVE_SIGNATURE_INVALID");
    const sig = tamper(path, archive, SIGNATURE_RECORD, (d) => d.write(d.subarray(-10, -9).toString() === "A" ? "B" : "A", d.length - 10));
    await expectCoilError(openArchive(sig, { publicKey }), "ARCHIVE_SIGNATURE_INVALID");
    await archive.close();

    const wrong = await generateSigningKeyPair();
    await expectCoilError(openArchive(path, { publicKey: wrong.publicKey }), "ARCHIVE_SIGNATURE_INVALID", /untrusted key/);

    const unsigned = nextPath();
    await writeSample(unsigned);
    await expectCoilError(openArchive(unsigned, { requireSignature: true }), "ARCHIVE_UNSIGNED");
    await expectCoilError(openArchive(unsigned, { publicKey }), "ARCHIVE_UNSIGNED");
  });
});

describe("zip64", () => {
  afterEach(() => {
    zip64Limits.threshold = 0xffffffff;
  });

  it("writes zip64 extra fields for sizes and offsets past the limit, and reads them back", async () => {
    // Lowered from 4 GiB so the zip64 forms appear in a small file.
    zip64Limits.threshold = 1000;
    const path = nextPath();
    await writeSample(path);
    const file = readFileSync(path);
    const archive = await openArchive(path);
    expect(archive.records.every((r) => r.offset % 64 === 0)).toBe(true);
    expect((await archive.readBytes(".data/0.storage")).equals(weights)).toBe(true);
    await archive.close();
    // The end record's central directory offset is saturated; the zip64 record holds it.
    const eocd = file.length - 22;
    expect(file.readUInt32LE(eocd)).toBe(0x06054b50);
    expect(file.readUInt32LE(eocd + 16)).toBe(0xffffffff);
  });
});
