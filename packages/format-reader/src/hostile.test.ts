import { generateKeyPairSync } from "node:crypto";
import { crc32 } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { openArchive, type OpenArchiveOptions } from "@coil/format-reader";
import type { CoilErrorCode } from "@coil/errors";
import { expectCoilError, tempDir } from "../test/files.ts";
import { buildTorchArchive, buildZip, type BuildEntry, type BuiltZip } from "../test/zip-builder.ts";

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let counter = 0;

async function expectRejected(bytes: Uint8Array, code: CoilErrorCode, message?: RegExp, options?: OpenArchiveOptions): Promise<Error> {
  const path = tmp.file(`case-${++counter}.pt`, bytes);
  return expectCoilError(openArchive(path, options), code, message);
}

function patched(built: BuiltZip, edits: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(built.bytes);
  edits(copy);
  return copy;
}

const valid = buildTorchArchive();
const entry = (name: string): BuiltZip["entries"][number] => valid.entries.find((e) => e.name === `model/${name}`)!;

describe("truncation and garbage", () => {
  it("rejects empty, tiny, non-zip and truncated files", async () => {
    await expectRejected(Buffer.alloc(0), "ARCHIVE_INVALID", /not a zip/);
    await expectRejected(Buffer.from("PK"), "ARCHIVE_INVALID");
    await expectRejected(Buffer.alloc(4096, 0x41), "ARCHIVE_INVALID", /end-of-central-directory/);
    for (const keep of [22, 100, valid.cdOffset, valid.eocdOffset, valid.bytes.length - 1]) {
      await expectRejected(valid.bytes.subarray(0, keep), "ARCHIVE_INVALID");
    }
    // Cut from the front: every offset now points at the wrong bytes.
    await expectRejected(valid.bytes.subarray(64), "ARCHIVE_INVALID");
  });

  it("rejects an archive with no records", async () => {
    await expectRejected(buildZip([]).bytes, "ARCHIVE_INVALID", /no records/);
  });
});

describe("end records", () => {
  it("rejects a central directory offset past the end of the file or off by one", async () => {
    const noZip64 = buildTorchArchive({ options: { zip64End: false } });
    await expectRejected(patched(noZip64, (b) => b.writeUInt32LE(0xfffffff0, noZip64.eocdOffset + 16)), "ARCHIVE_INVALID");
    await expectRejected(patched(noZip64, (b) => b.writeUInt32LE(noZip64.cdOffset + 1, noZip64.eocdOffset + 16)), "ARCHIVE_INVALID");
    await expectRejected(patched(valid, (b) => b.writeBigUInt64LE(BigInt(valid.bytes.length * 4), valid.zip64Offset! + 48)), "ARCHIVE_INVALID");
  });

  it("rejects a zip64 locator that points nowhere useful", async () => {
    await expectRejected(patched(valid, (b) => b.writeBigUInt64LE(0n, valid.locatorOffset! + 8)), "ARCHIVE_INVALID", /zip64/);
    await expectRejected(patched(valid, (b) => b.writeBigUInt64LE(2n ** 62n, valid.locatorOffset! + 8)), "ARCHIVE_INVALID");
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(3, valid.locatorOffset! + 16)), "ARCHIVE_INVALID", /multi-disk/);
  });

  it("rejects end records that disagree", async () => {
    await expectRejected(patched(valid, (b) => b.writeUInt16LE(3, valid.eocdOffset + 10)), "ARCHIVE_INVALID", /disagree/);
    await expectRejected(patched(valid, (b) => b.writeUInt16LE(1, valid.eocdOffset + 4)), "ARCHIVE_INVALID", /multi-disk/);
  });

  it("accepts a trailing archive comment, and rejects a comment length that lies", async () => {
    const commented = buildTorchArchive({ options: { comment: Buffer.from("hello PK\x05\x06 comment") } });
    await (await openArchive(tmp.file("comment.pt", commented.bytes))).close();
    await expectRejected(patched(commented, (b) => b.writeUInt16LE(3, commented.eocdOffset + 20)), "ARCHIVE_INVALID");
  });
});

describe("huge counts and sizes are refused before anything is allocated", () => {
  it("bounds the number of records", async () => {
    await expectRejected(valid.bytes, "ARCHIVE_TOO_LARGE", /records/, { limits: { maxRecords: 3 } });
    const lying = patched(valid, (b) => {
      b.writeBigUInt64LE(2n ** 40n, valid.zip64Offset! + 24);
      b.writeBigUInt64LE(2n ** 40n, valid.zip64Offset! + 32);
      b.writeUInt16LE(0xffff, valid.eocdOffset + 8);
      b.writeUInt16LE(0xffff, valid.eocdOffset + 10);
    });
    await expectRejected(lying, "ARCHIVE_TOO_LARGE", /records/);
  });

  it("bounds the central directory size", async () => {
    const lying = patched(valid, (b) => {
      b.writeBigUInt64LE(2n ** 35n, valid.zip64Offset! + 40);
      b.writeUInt32LE(0xffffffff, valid.eocdOffset + 12);
    });
    await expectRejected(lying, "ARCHIVE_TOO_LARGE", /central directory/);
    await expectRejected(valid.bytes, "ARCHIVE_TOO_LARGE", /central directory/, { limits: { maxCentralDirectorySize: 100 } });
  });

  it("rejects a count the central directory cannot hold", async () => {
    const lying = patched(valid, (b) => {
      b.writeBigUInt64LE(5000n, valid.zip64Offset! + 24);
      b.writeBigUInt64LE(5000n, valid.zip64Offset! + 32);
      b.writeUInt16LE(5000, valid.eocdOffset + 8);
      b.writeUInt16LE(5000, valid.eocdOffset + 10);
    });
    await expectRejected(lying, "ARCHIVE_INVALID", /cannot hold/);
  });

  it("bounds name lengths and the manifest size", async () => {
    await expectRejected(valid.bytes, "ARCHIVE_TOO_LARGE", /name/, { limits: { maxNameLength: 10 } });
    const signed = buildTorchArchive({ manifest: true });
    await expectRejected(signed.bytes, "ARCHIVE_TOO_LARGE", /manifest\.json/, { limits: { maxManifestSize: 200 } });
  });
});

describe("central directory and local headers", () => {
  it("rejects local header offsets past EOF, into the central directory, or at the wrong header", async () => {
    const e = entry("model/model.pkl");
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(0xfffffff0, e.centralOffset + 42)), "ARCHIVE_INVALID");
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(valid.cdOffset, e.centralOffset + 42)), "ARCHIVE_INVALID");
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(0, e.centralOffset + 42)), "ARCHIVE_INVALID", /different record/);
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(e.headerOffset + 1, e.centralOffset + 42)), "ARCHIVE_INVALID", /no local header/);
  });

  it("rejects sizes that run into the central directory or past EOF", async () => {
    const e = entry("mymodels/mlp.py");
    const grow = (size: number) =>
      patched(valid, (b) => {
        b.writeUInt32LE(size, e.centralOffset + 20);
        b.writeUInt32LE(size, e.centralOffset + 24);
      });
    await expectRejected(grow(valid.bytes.length), "ARCHIVE_INVALID", /run past/);
    await expectRejected(grow(0xfffffffe), "ARCHIVE_INVALID", /run past/);
    // Still inside the records area, but then the data descriptor is not where it should be.
    await expectRejected(grow(e.size + 4), "ARCHIVE_INVALID", /descriptor/);
    // Compressed and uncompressed sizes must agree for a stored record.
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(e.size + 1, e.centralOffset + 20)), "ARCHIVE_INVALID", /stored bytes/);
  });

  it("rejects records that overlap", async () => {
    // Record B's local header hides inside record A's data, aligned as a real one would be.
    const headerFor = (name: string, data: Buffer, at: number): Buffer => {
      const z = buildZip([{ name, data }]);
      // The builder pads for offset 0; re-pad for `at` (a multiple of 64 keeps the same padding).
      expect(at % 64).toBe(0);
      return z.bytes.subarray(0, z.entries[0]!.dataOffset + data.length + 16);
    };
    const bData = Buffer.from("inner");
    const probe = buildTorchArchive({ records: [["model/model.pkl", Buffer.alloc(1024)]] });
    const aData = Buffer.alloc(1024);
    const innerAt = probe.entries[0]!.dataOffset + 128;
    headerFor("model/inner.py", bData, 0).copy(aData, 128);
    const overlapping = buildTorchArchive({
      records: [["model/model.pkl", aData]],
      edit: (entries: BuildEntry[]) => {
        entries.push({ name: "model/inner.py", data: bData, centralOnly: true, centralOffset: innerAt });
      },
    });
    await expectRejected(overlapping.bytes, "ARCHIVE_INVALID", /overlap/);
  });

  it("rejects duplicate names", async () => {
    const dup = buildTorchArchive({ records: [["model/model.pkl", "a"], ["model/model.pkl", "b"]] });
    await expectRejected(dup.bytes, "ARCHIVE_INVALID", /twice/);
  });

  it("rejects path traversal, absolute, backslash, directory and rootless names", async () => {
    const cases: Array<[string, RegExp]> = [
      ["model/../evil.py", /'\.\.' segment/],
      ["model/a/../../evil.py", /'\.\.' segment/],
      ["model/./x", /'\.' segment/],
      ["model//x", /absolute|empty path segment/],
      ["model/a//b.py", /empty path segment/],
      ["model/a\\b.py", /backslash/],
      ["model/dir/", /directory/],
      ["model/C:/x", /./],
      ["other/x.py", /outside the root/],
      ["model/x\u0001.py", /control character/],
    ];
    for (const [name, message] of cases) {
      const bytes = buildTorchArchive({ edit: (entries) => entries.splice(1, 0, { name, data: Buffer.from("x") }) }).bytes;
      await expectRejected(bytes, "ARCHIVE_INVALID", message);
    }
    for (const first of ["/etc/passwd", "evil.py", "../model/x", "C:\\x"]) {
      const bytes = buildTorchArchive({ edit: (entries) => entries.unshift({ name: first, data: Buffer.from("x") }) }).bytes;
      await expectRejected(bytes, "ARCHIVE_INVALID");
    }
  });

  it("refuses compressed records (the zip-bomb defence) without reading them", async () => {
    const bomb = buildTorchArchive({
      edit: (entries) => {
        entries[1] = { ...entries[1]!, method: 8, centralSize: 0x7fffffff };
      },
    });
    await expectRejected(bomb.bytes, "ARCHIVE_INVALID", /compressed \(method 8\)/);
    const deflated = buildTorchArchive({ edit: (entries) => (entries[0]!.method = 8) });
    const err = await expectRejected(deflated.bytes, "ARCHIVE_INVALID", /mapped in place/);
    expect((err as { details?: Record<string, unknown> }).details).toMatchObject({ record: "model/.data/0.storage", method: 8 });
  });

  it("refuses encrypted records", async () => {
    await expectRejected(buildTorchArchive({ edit: (entries) => (entries[2]!.flags = 0x0809) }).bytes, "ARCHIVE_INVALID", /encrypted/);
    await expectRejected(buildTorchArchive({ edit: (entries) => (entries[2]!.flags = 0x0848) }).bytes, "ARCHIVE_INVALID", /encrypted/);
  });

  it("rejects local and central headers that disagree", async () => {
    const e = entry("model/model.pkl");
    await expectRejected(patched(valid, (b) => b.writeUInt16LE(0x0800, e.headerOffset + 6)), "ARCHIVE_INVALID", /flags disagree/);
    await expectRejected(patched(valid, (b) => b.writeUInt16LE(8, e.headerOffset + 8)), "ARCHIVE_INVALID", /compressed/);
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(1234, e.headerOffset + 14)), "ARCHIVE_INVALID", /CRC or size/);
    // A bad data descriptor.
    await expectRejected(patched(valid, (b) => b.writeUInt32LE(e.size + 1, e.descriptorOffset + 8)), "ARCHIVE_INVALID", /descriptor/);
  });

  it("reports which record is not 64-byte aligned", async () => {
    const unaligned = buildTorchArchive({ options: { align: false } });
    const err = await expectRejected(unaligned.bytes, "ARCHIVE_INVALID", /not 64-byte aligned/);
    expect((err as { details?: Record<string, unknown> }).details).toMatchObject({ record: "model/.data/0.storage" });
  });

  it("rejects malformed extra fields and non-UTF-8 names", async () => {
    const e = entry(".data/version");
    await expectRejected(patched(valid, (b) => b.writeUInt16LE(0xfff0, e.headerOffset + 30 + e.name.length + 2)), "ARCHIVE_INVALID");
    const latin = buildTorchArchive({ edit: (entries) => entries.splice(1, 0, { name: "model/caf\u00e9.py", data: Buffer.from("x"), flags: 0x0008 }) });
    await expectRejected(latin.bytes, "ARCHIVE_INVALID", /UTF-8 flag/);
    const bad = buildTorchArchive({ edit: (entries) => entries.splice(1, 0, { name: "model/xx.py", data: Buffer.from("x") }) });
    const at = bad.entries[1]!;
    await expectRejected(
      patched(bad, (b) => {
        b[at.centralOffset + 46 + 6] = 0xff;
        b[at.headerOffset + 30 + 6] = 0xff;
      }),
      "ARCHIVE_INVALID",
      /UTF-8/,
    );
  });

  it("reads zip64 extra fields everywhere (as torch writes them past 4 GiB)", async () => {
    const z64 = buildTorchArchive({ options: { zip64Everywhere: true } });
    const archive = await openArchive(tmp.file("z64.pt", z64.bytes));
    expect(archive.records.length).toBe(7);
    expect(await archive.readText(".data/version")).toBe("6\n");
    await archive.close();
    // Saturated fields without the zip64 extra field are refused.
    const e = z64.entries[0]!;
    await expectRejected(patched(z64, (b) => b.writeUInt16LE(0x9999, e.centralOffset + 46 + e.name.length)), "ARCHIVE_INVALID", /zip64 extra/);
  });
});

describe("torch.package layout", () => {
  it("requires .data/version and .data/extern_modules, with sane contents", async () => {
    const without = (name: string) => buildTorchArchive({ edit: (entries) => entries.splice(entries.findIndex((e) => e.name === `model/${name}`), 1) });
    await expectRejected(without(".data/version").bytes, "ARCHIVE_INVALID", /missing \.data\/version/);
    await expectRejected(without(".data/extern_modules").bytes, "ARCHIVE_INVALID", /missing \.data\/extern_modules/);
    await (await openArchive(tmp.file("nopy.pt", without(".data/python_version").bytes))).close();
    const version = (text: string) =>
      buildTorchArchive({ edit: (entries) => (entries.find((e) => e.name === "model/.data/version")!.data = Buffer.from(text)) });
    await expectRejected(version("six\n").bytes, "ARCHIVE_INVALID", /positive integer/);
    await expectRejected(version("0\n").bytes, "ARCHIVE_INVALID", /positive integer/);
    await expectRejected(version("7".repeat(100)).bytes, "ARCHIVE_TOO_LARGE");
  });

  it("checks the CRC of the small records it reads even when skipping hashes", async () => {
    const e = entry(".data/version");
    const flipped = patched(valid, (b) => (b[e.dataOffset] = "7".charCodeAt(0)));
    await expectRejected(flipped, "ARCHIVE_HASH_MISMATCH", /CRC-32/, { verifyHashes: false });
  });

  it("checks every record's CRC at open, or on read when skipping hashes", async () => {
    const e = entry("mymodels/mlp.py");
    const flipped = patched(valid, (b) => (b[e.dataOffset] ^= 1));
    await expectRejected(flipped, "ARCHIVE_HASH_MISMATCH", /mymodels\/mlp\.py/);
    const archive = await openArchive(tmp.file("lazy.pt", flipped), { verifyHashes: false });
    await expectCoilError(archive.readBytes("mymodels/mlp.py"), "ARCHIVE_HASH_MISMATCH");
    await archive.close();
  });
});

describe("manifest and signature records", () => {
  const keys = generateKeyPairSync("ed25519");

  it("rejects manifests that are not JSON, break the schema, or disagree with the records", async () => {
    const withManifest = (text: string) =>
      buildTorchArchive({ manifest: true, edit: (entries) => (entries.find((e) => e.name.endsWith("manifest.json"))!.data = Buffer.from(text)) });
    await expectRejected(withManifest("{").bytes, "ARCHIVE_INVALID", /not valid JSON/);
    await expectRejected(withManifest("[]").bytes, "ARCHIVE_INVALID", /JSON object/);
    await expectRejected(withManifest('{"formatVersion":2}').bytes, "ARCHIVE_INVALID", /formatVersion/);
    await expectRejected(Buffer.from(withManifest("\u00ff").bytes), "ARCHIVE_INVALID");
    // An extra record the manifest does not cover (e.g. slipped-in source).
    const extra = buildTorchArchive({ manifest: true, edit: (entries) => entries.splice(1, 0, { name: "model/evil.py", data: Buffer.from("x") }) });
    await expectRejected(extra.bytes, "ARCHIVE_INVALID", /not listed in the manifest/);
    // A record the manifest lists but the archive lacks.
    const missing = buildTorchArchive({ manifest: true, edit: (entries) => entries.splice(2, 1) });
    await expectRejected(missing.bytes, "ARCHIVE_INVALID", /lacks/);
    // Stray records under .data/coil/ in an archive without a manifest.
    const stray = buildTorchArchive({ edit: (entries) => entries.push({ name: "model/.data/coil/x", data: Buffer.from("x") }) });
    await expectRejected(stray.bytes, "ARCHIVE_INVALID", /reserved/);
  });

  it("rejects a signature without a manifest and malformed signature records", async () => {
    const orphan = buildTorchArchive({ edit: (entries) => entries.push({ name: "model/.data/coil/signature", data: Buffer.from("{}") }) });
    await expectRejected(orphan.bytes, "ARCHIVE_INVALID", /without a/);
    const malformed = buildTorchArchive({
      manifest: true,
      signingKey: keys.privateKey,
      edit: (entries) => (entries.at(-1)!.data = Buffer.from('{"algorithm":"ed25519","publicKey":"AAAA","signature":"AAAA"}')),
    });
    await expectRejected(malformed.bytes, "ARCHIVE_SIGNATURE_INVALID", /malformed/);
  });

  it("detects a manifest altered after signing (CRCs fixed up by the attacker)", async () => {
    const signed = buildTorchArchive({ manifest: true, signingKey: keys.privateKey });
    const m = signed.entries.find((e) => e.name.endsWith("manifest.json"))!;
    const tampered = patched(signed, (b) => {
      const text = b.subarray(m.dataOffset, m.dataOffset + m.size);
      const at = text.indexOf('"float32"');
      text.write('"float64"', at);
      const crc = crc32(text) >>> 0;
      b.writeUInt32LE(crc, m.centralOffset + 16);
      b.writeUInt32LE(crc, m.descriptorOffset + 4);
    });
    await expectRejected(tampered, "ARCHIVE_SIGNATURE_INVALID", /does not verify/);
  });
});
