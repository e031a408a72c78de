/**
 * Seeded mutation fuzz: thousands of corrupted copies of valid archives, each of
 * which must either open or fail with a CoilError — no other exception, no hang.
 * Mutations aim mostly at the structures a parser trusts: the end records, the
 * central directory and the local headers.
 */
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { isCoilError, type CoilErrorCode } from "@coil/errors";
import { openArchive, type OpenArchiveOptions } from "@coil/format-reader";
import { tempDir } from "../test/files.ts";
import { buildTorchArchive, type BuiltZip } from "../test/zip-builder.ts";

const CASES = 3000;
const SEED = 0xc011;

/** mulberry32: small, fast, reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const tmp = tempDir("coil-fuzz-");
afterAll(() => tmp.cleanup());

describe("mutation fuzz", () => {
  it(`${CASES} mutated archives each open or throw a CoilError`, async () => {
    const keys = generateKeyPairSync("ed25519");
    const corpus: Array<{ zip: BuiltZip; options: OpenArchiveOptions }> = [
      { zip: buildTorchArchive(), options: {} },
      { zip: buildTorchArchive({ manifest: true, signingKey: keys.privateKey }), options: { publicKey: keys.publicKey } },
      { zip: buildTorchArchive({ manifest: true, signingKey: keys.privateKey }), options: { verifyHashes: false } },
      { zip: buildTorchArchive({ options: { zip64Everywhere: true } }), options: {} },
      { zip: buildTorchArchive({ options: { zip64End: false, comment: Buffer.from("comment") } }), options: {} },
    ];
    const random = rng(SEED);
    const int = (n: number): number => Math.floor(random() * n);
    const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
    const extremes = [0, 1, 0x3f, 0x40, 0x7f, 0xff, 0xffff, 0xfffe, 0x7fffffff, 0xffffffff, 0xfffffffe];

    /** A position inside a structure the parser trusts, usually. */
    const hotSpot = (zip: BuiltZip): number => {
      const r = random();
      if (r < 0.35) return zip.cdOffset + int(zip.bytes.length - zip.cdOffset); // central dir + end records
      if (r < 0.7) {
        const e = pick(zip.entries);
        return e.headerOffset + int(Math.max(1, e.dataOffset - e.headerOffset)); // a local header
      }
      if (r < 0.8) {
        const e = pick(zip.entries);
        return e.descriptorOffset + int(16); // a data descriptor
      }
      return int(zip.bytes.length);
    };

    const mutate = (zip: BuiltZip): Buffer => {
      const b = Buffer.from(zip.bytes);
      const kind = int(6);
      if (kind === 0) {
        // Flip 1-4 bits or bytes.
        for (let i = 0, n = 1 + int(4); i < n; i++) {
          const at = Math.min(hotSpot(zip), b.length - 1);
          b[at] = random() < 0.5 ? b[at]! ^ (1 << int(8)) : int(256);
        }
        return b;
      }
      if (kind === 1) {
        // Overwrite a 16- or 32-bit field with an extreme value.
        const at = Math.min(hotSpot(zip), b.length - 4);
        const v = pick(extremes);
        if (random() < 0.5) b.writeUInt16LE(v & 0xffff, at);
        else b.writeUInt32LE(v >>> 0, at);
        return b;
      }
      if (kind === 2) return b.subarray(0, int(b.length)); // truncate
      if (kind === 3) {
        // Splice: copy a run of the archive over another place (headers onto headers).
        const from = hotSpot(zip);
        const to = hotSpot(zip);
        const len = 1 + int(64);
        b.copy(b, to, from, Math.min(b.length, from + len));
        return b;
      }
      if (kind === 4) {
        // Insert or delete bytes: everything after shifts.
        const at = hotSpot(zip);
        if (random() < 0.5) return Buffer.concat([b.subarray(0, at), Buffer.alloc(1 + int(70), int(256)), b.subarray(at)]);
        return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(70)))]);
      }
      // Garbage tail or head.
      return random() < 0.5 ? Buffer.concat([b, Buffer.alloc(int(100), int(256))]) : Buffer.concat([Buffer.alloc(1 + int(100)), b]);
    };

    const path = tmp.file("case.pt");
    const outcomes = new Map<string, number>();
    const started = Date.now();
    for (let i = 0; i < CASES; i++) {
      const { zip, options } = pick(corpus);
      const bytes = mutate(zip);
      writeFileSync(path, bytes);
      let outcome: string;
      try {
        const archive = await openArchive(path, { ...options, limits: { maxRecords: 64, maxCentralDirectorySize: 1 << 16 } });
        // An archive that opens must also read back without surprises.
        for (const r of archive.records) {
          try {
            await archive.readBytes(r.name, { maxBytes: 1 << 20 });
          } catch (err) {
            if (!isCoilError(err)) throw err;
          }
        }
        await archive.close();
        outcome = "opened";
      } catch (err) {
        if (!isCoilError(err)) {
          throw new Error(`case ${i} (seed ${SEED}) threw a non-CoilError: ${String(err)}`, { cause: err });
        }
        outcome = err.code satisfies CoilErrorCode;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const seconds = (Date.now() - started) / 1000;
    console.log(`fuzz: ${CASES} cases in ${seconds.toFixed(1)} s`, Object.fromEntries(outcomes));
    // Most mutations must be caught, and by the structural checks.
    expect(outcomes.get("ARCHIVE_INVALID") ?? 0).toBeGreaterThan(CASES / 2);
    expect([...outcomes.keys()].every((k) => k === "opened" || k.startsWith("ARCHIVE_"))).toBe(true);
  });
});
