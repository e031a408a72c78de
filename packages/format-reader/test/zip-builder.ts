/**
 * Test-only zip builder, independent of @coil/format-writer: lays archives out
 * as PyTorchFileWriter does (data descriptors, "FB" padding to 64 bytes, zip64
 * end records), with knobs to break every rule, and reports where each
 * structure landed so tests can corrupt one field precisely.
 */
import { createHash, sign, type KeyObject } from "node:crypto";
import { crc32 } from "node:zlib";
import {
  encodeSignatureRecord,
  MANIFEST_RECORD,
  rawEd25519PublicKey,
  serializeManifest,
  SIGNATURE_RECORD,
  type Manifest,
} from "@coil/format-reader";
import { createPublicKey } from "node:crypto";

export interface BuildEntry {
  /** Full name, root folder included. */
  name: string;
  data: Uint8Array;
  /** Compression method written in both headers (default 0). */
  method?: number;
  /** General-purpose flags (default 0x0808). */
  flags?: number;
  /** Write only a central entry, pointing at `centralOffset` (for overlap tests). */
  centralOnly?: boolean;
  centralOffset?: number;
  /** Override what the central directory claims. */
  centralSize?: number;
  centralCrc?: number;
}

export interface BuildOptions {
  /** Pad data to 64 bytes (default true). */
  align?: boolean;
  /** Write zip64 end record + locator (default true, as torch). */
  zip64End?: boolean;
  /** Write every size and offset in zip64 extra fields (as torch does past 4 GiB). */
  zip64Everywhere?: boolean;
  /** Bytes of archive comment. */
  comment?: Buffer;
}

export interface EntryLayout {
  name: string;
  headerOffset: number;
  dataOffset: number;
  size: number;
  descriptorOffset: number;
  /** Offset of this entry's central directory header. */
  centralOffset: number;
}

export interface BuiltZip {
  bytes: Buffer;
  entries: EntryLayout[];
  cdOffset: number;
  cdSize: number;
  zip64Offset: number | undefined;
  locatorOffset: number | undefined;
  eocdOffset: number;
}

function zip64Field(values: number[]): Buffer {
  const b = Buffer.alloc(4 + 8 * values.length);
  b.writeUInt16LE(1, 0);
  b.writeUInt16LE(8 * values.length, 2);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), 4 + 8 * i));
  return b;
}

export function buildZip(entries: BuildEntry[], options: BuildOptions = {}): BuiltZip {
  const align = options.align ?? true;
  const z64all = options.zip64Everywhere ?? false;
  const parts: Buffer[] = [];
  let cursor = 0;
  const layout: EntryLayout[] = [];
  const central: Buffer[] = [];
  const push = (b: Buffer): void => {
    parts.push(b);
    cursor += b.length;
  };
  for (const e of entries) {
    const name = Buffer.from(e.name, "utf8");
    const flags = e.flags ?? 0x0808;
    const method = e.method ?? 0;
    const crc = crc32(e.data) >>> 0;
    const size = e.data.length;
    let headerOffset = cursor;
    let dataOffset = -1;
    let descriptorOffset = -1;
    if (!e.centralOnly) {
      const z64 = z64all ? zip64Field([size, size, headerOffset]) : Buffer.alloc(0);
      const start = headerOffset + 30 + name.length + z64.length + 4;
      const pad = align ? (64 - (start % 64)) % 64 : 0;
      const h = Buffer.alloc(30 + name.length + z64.length + 4 + pad);
      h.writeUInt32LE(0x04034b50, 0);
      h.writeUInt16LE(flags, 6);
      h.writeUInt16LE(method, 8);
      if ((flags & 8) === 0) {
        h.writeUInt32LE(crc, 14);
        h.writeUInt32LE(z64all ? 0xffffffff : size, 18);
        h.writeUInt32LE(z64all ? 0xffffffff : size, 22);
      }
      h.writeUInt16LE(name.length, 26);
      h.writeUInt16LE(z64.length + 4 + pad, 28);
      name.copy(h, 30);
      z64.copy(h, 30 + name.length);
      h.write("FB", 30 + name.length + z64.length, "latin1");
      h.writeUInt16LE(pad, 30 + name.length + z64.length + 2);
      h.fill(0x5a, 30 + name.length + z64.length + 4);
      push(h);
      dataOffset = cursor;
      push(Buffer.from(e.data));
      descriptorOffset = cursor;
      if ((flags & 8) !== 0) {
        const d = Buffer.alloc(z64all ? 24 : 16);
        d.writeUInt32LE(0x08074b50, 0);
        d.writeUInt32LE(crc, 4);
        if (z64all) {
          d.writeBigUInt64LE(BigInt(size), 8);
          d.writeBigUInt64LE(BigInt(size), 16);
        } else {
          d.writeUInt32LE(size, 8);
          d.writeUInt32LE(size, 12);
        }
        push(d);
      }
    } else {
      headerOffset = e.centralOffset ?? 0;
    }
    const csize = e.centralSize ?? size;
    const z64c = z64all ? zip64Field([csize, csize, headerOffset]) : Buffer.alloc(0);
    const c = Buffer.alloc(46 + name.length + z64c.length);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(flags, 8);
    c.writeUInt16LE(method, 10);
    c.writeUInt32LE(e.centralCrc ?? crc, 16);
    c.writeUInt32LE(z64all ? 0xffffffff : csize, 20);
    c.writeUInt32LE(z64all ? 0xffffffff : csize, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt16LE(z64c.length, 30);
    c.writeUInt32LE(z64all ? 0xffffffff : headerOffset, 42);
    name.copy(c, 46);
    z64c.copy(c, 46 + name.length);
    central.push(c);
    layout.push({ name: e.name, headerOffset, dataOffset, size, descriptorOffset, centralOffset: -1 });
  }
  const cdOffset = cursor;
  let p = cdOffset;
  central.forEach((c, i) => {
    layout[i]!.centralOffset = p;
    p += c.length;
  });
  const cd = Buffer.concat(central);
  push(cd);
  let zip64Offset: number | undefined;
  let locatorOffset: number | undefined;
  const n = entries.length;
  if (options.zip64End ?? true) {
    zip64Offset = cursor;
    const r = Buffer.alloc(56);
    r.writeUInt32LE(0x06064b50, 0);
    r.writeBigUInt64LE(44n, 4);
    r.writeUInt16LE(0x031e, 12);
    r.writeUInt16LE(0x2d, 14);
    r.writeBigUInt64LE(BigInt(n), 24);
    r.writeBigUInt64LE(BigInt(n), 32);
    r.writeBigUInt64LE(BigInt(cd.length), 40);
    r.writeBigUInt64LE(BigInt(cdOffset), 48);
    push(r);
    locatorOffset = cursor;
    const l = Buffer.alloc(20);
    l.writeUInt32LE(0x07064b50, 0);
    l.writeBigUInt64LE(BigInt(zip64Offset), 8);
    l.writeUInt32LE(1, 16);
    push(l);
  }
  const eocdOffset = cursor;
  const comment = options.comment ?? Buffer.alloc(0);
  const e = Buffer.alloc(22 + comment.length);
  e.writeUInt32LE(0x06054b50, 0);
  e.writeUInt16LE(Math.min(n, 0xffff), 8);
  e.writeUInt16LE(Math.min(n, 0xffff), 10);
  e.writeUInt32LE(cd.length, 12);
  e.writeUInt32LE(z64all ? 0xffffffff : cdOffset, 16);
  e.writeUInt16LE(comment.length, 20);
  comment.copy(e, 22);
  push(e);
  return { bytes: Buffer.concat(parts), entries: layout, cdOffset, cdSize: cd.length, zip64Offset, locatorOffset, eocdOffset };
}

export interface TorchArchiveSpec {
  root?: string;
  /** Records (relative names) besides the required ones, in order. */
  records?: Array<[string, Uint8Array | string]>;
  externs?: string[];
  /** Add a manifest (entry point model/model.pkl, which `records` must include). */
  manifest?: boolean | Partial<Manifest>;
  signingKey?: KeyObject;
  options?: BuildOptions;
  /** Change entries before they are laid out. */
  edit?: (entries: BuildEntry[]) => void;
}

/** A valid archive in torch.package's layout, optionally with a (signed) manifest. */
export function buildTorchArchive(spec: TorchArchiveSpec = {}): BuiltZip {
  const root = spec.root ?? "model";
  const records: Array<[string, Buffer]> = (
    spec.records ?? [
      [".data/0.storage", Buffer.from(new Float32Array([1, 2, 3, 4]).buffer)],
      ["model/model.pkl", Buffer.from("not really a pickle")],
      ["mymodels/__init__.py", "from .mlp import MLP\n"],
      ["mymodels/mlp.py", "class MLP: pass\n"],
    ]
  ).map(([n, d]) => [n, Buffer.from(d)]);
  records.push([".data/extern_modules", Buffer.from((spec.externs ?? ["torch", "builtins"]).map((m) => `${m}\n`).join(""))]);
  records.push([".data/python_version", Buffer.from("3.11.2")]);
  records.push([".data/version", Buffer.from("6\n")]);
  if (spec.manifest) {
    const extra = typeof spec.manifest === "object" ? spec.manifest : {};
    const manifest: Manifest = {
      formatVersion: 1,
      entryPoint: { package: "model", resource: "model.pkl" },
      inputs: [{ name: "x", dtype: "float32", shape: [-1, 4] }],
      outputs: [{ name: "y", dtype: "float32", shape: [-1, 2] }],
      ...extra,
      records: records.map(([name, data]) => ({
        name,
        size: data.length,
        sha256: createHash("sha256").update(data).digest("hex"),
      })),
    };
    const bytes = serializeManifest(manifest);
    records.push([MANIFEST_RECORD, bytes]);
    if (spec.signingKey !== undefined) {
      const publicKey = rawEd25519PublicKey(createPublicKey(spec.signingKey));
      const signature = sign(null, bytes, spec.signingKey);
      records.push([SIGNATURE_RECORD, encodeSignatureRecord({ algorithm: "ed25519", publicKey, signature })]);
    }
  }
  const entries: BuildEntry[] = records.map(([name, data]) => ({ name: `${root}/${name}`, data }));
  spec.edit?.(entries);
  return buildZip(entries, spec.options);
}
