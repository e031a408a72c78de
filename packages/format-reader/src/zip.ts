/**
 * The zip layer: from the end-of-central-directory record (and the zip64 locator
 * and record) through the central directory and every local header, trusting no
 * size, count or offset until it is checked against the file and the limits.
 * Reads are positional and bounded; nothing here allocates more than the limits allow.
 */
import type { FileHandle } from "node:fs/promises";
import { CoilError } from "@coil/errors";
import { ALIGNMENT, type ArchiveLimits } from "./constants.js";

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_DESCRIPTOR = 0x08074b50;

const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const EOCD_SIZE = 22;
const ZIP64_EOCD_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const MAX_COMMENT = 0xffff;

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;
const ZIP64_EXTRA_ID = 0x0001;

const FLAG_ENCRYPTED = 1 << 0;
const FLAG_DESCRIPTOR = 1 << 3;
const FLAG_STRONG_ENCRYPTION = 1 << 6;
const FLAG_UTF8 = 1 << 11;
const FLAG_MASKED_HEADERS = 1 << 13;

/** One record as the zip layer sees it. */
export interface ZipEntry {
  /** Full name, root folder included. */
  name: string;
  /** Index in the central directory. */
  index: number;
  flags: number;
  crc32: number;
  size: number;
  /** File offset of the local header. */
  headerOffset: number;
  /** File offset of the first data byte. */
  dataOffset: number;
  /** File offset just past the record (data, then its data descriptor if any). */
  end: number;
}

export interface ZipStructure {
  entries: ZipEntry[];
  centralDirectoryOffset: number;
  centralDirectorySize: number;
  zip64: boolean;
  fileSize: number;
}

/** Positional, exact reads from an open file. */
export class FileSource {
  constructor(
    readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  /** Exactly `length` bytes at `position`; ARCHIVE_INVALID if the file ends first. */
  async read(position: number, length: number, what: string): Promise<Buffer> {
    if (position < 0 || length < 0 || position + length > this.size) {
      throw invalid(`${what} lies outside the file (bytes ${position}..${position + length} of ${this.size})`, {
        offset: position,
        length,
      });
    }
    const buf = Buffer.allocUnsafe(length);
    await this.fill(buf, position, what);
    return buf;
  }

  /** Fills `buf` from `position`; ARCHIVE_INVALID if the file ends first (it may have shrunk). */
  async fill(buf: Buffer, position: number, what: string): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await this.handle.read(buf, done, buf.length - done, position + done));
      } catch (cause) {
        throw new CoilError("INTERNAL", `reading ${this.path} failed`, { cause, details: { path: this.path } });
      }
      if (bytesRead === 0) {
        throw invalid(`${what}: the file ends early (truncated, or changed while being read)`, {
          offset: position + done,
        });
      }
      done += bytesRead;
    }
  }
}

export function invalid(message: string, details?: Record<string, unknown>): CoilError {
  return new CoilError("ARCHIVE_INVALID", message, details === undefined ? {} : { details });
}

function tooLarge(message: string, details?: Record<string, unknown>): CoilError {
  return new CoilError("ARCHIVE_TOO_LARGE", message, details === undefined ? {} : { details });
}

function u64(buf: Buffer, offset: number, what: string): number {
  const value = buf.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${what} is implausibly large (${value})`);
  return Number(value);
}

interface EndRecord {
  entries: number;
  cdSize: number;
  cdOffset: number;
  /** Where the central directory must end: the zip64 record, or the EOCD. */
  cdEnd: number;
  zip64: boolean;
}

async function readEnd(source: FileSource): Promise<EndRecord> {
  const size = source.size;
  if (size < EOCD_SIZE) throw invalid(`not a zip archive: ${size} bytes is smaller than an end record`);
  const tailLength = Math.min(size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = size - tailLength;
  const tail = await source.read(tailStart, tailLength, "the end of the archive");
  // The last end record whose comment reaches exactly the end of the file.
  let at = -1;
  for (let i = tailLength - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === SIG_EOCD && tail.readUInt16LE(i + 20) === tailLength - i - EOCD_SIZE) {
      at = i;
      break;
    }
  }
  if (at < 0) throw invalid("not a zip archive, or truncated: no end-of-central-directory record");
  const eocdOffset = tailStart + at;
  const disk = tail.readUInt16LE(at + 4);
  const cdDisk = tail.readUInt16LE(at + 6);
  const entriesOnDisk = tail.readUInt16LE(at + 8);
  const entries16 = tail.readUInt16LE(at + 10);
  const cdSize32 = tail.readUInt32LE(at + 12);
  const cdOffset32 = tail.readUInt32LE(at + 16);

  // A zip64 locator sits right before the end record (PyTorchFileWriter always writes one).
  const locatorOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
  let locator: Buffer | undefined;
  if (locatorOffset >= 0) {
    const bytes =
      locatorOffset >= tailStart
        ? tail.subarray(locatorOffset - tailStart, locatorOffset - tailStart + ZIP64_LOCATOR_SIZE)
        : await source.read(locatorOffset, ZIP64_LOCATOR_SIZE, "the zip64 locator");
    if (bytes.readUInt32LE(0) === SIG_ZIP64_LOCATOR) locator = bytes;
  }

  if (locator === undefined) {
    if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entries16) {
      throw invalid("multi-disk (spanned) zip archives are not supported");
    }
    return { entries: entries16, cdSize: cdSize32, cdOffset: cdOffset32, cdEnd: eocdOffset, zip64: false };
  }

  const zip64Disk = locator.readUInt32LE(4);
  const zip64Offset = u64(locator, 8, "the zip64 record offset");
  const totalDisks = locator.readUInt32LE(16);
  if (zip64Disk !== 0 || totalDisks > 1) throw invalid("multi-disk (spanned) zip archives are not supported");
  if (zip64Offset + ZIP64_EOCD_SIZE > locatorOffset) {
    throw invalid("the zip64 locator points past itself", { offset: zip64Offset });
  }
  const record = await source.read(zip64Offset, ZIP64_EOCD_SIZE, "the zip64 end record");
  if (record.readUInt32LE(0) !== SIG_ZIP64_EOCD) {
    throw invalid("the zip64 locator does not point at a zip64 end record", { offset: zip64Offset });
  }
  const recordSize = u64(record, 4, "the zip64 end record size");
  if (zip64Offset + 12 + recordSize !== locatorOffset) {
    throw invalid("the zip64 end record's size disagrees with where the locator is", { offset: zip64Offset });
  }
  const disk64 = record.readUInt32LE(16);
  const cdDisk64 = record.readUInt32LE(20);
  const entriesOnDisk64 = u64(record, 24, "the record count");
  const entries64 = u64(record, 32, "the record count");
  const cdSize64 = u64(record, 40, "the central directory size");
  const cdOffset64 = u64(record, 48, "the central directory offset");
  if (disk64 !== 0 || cdDisk64 !== 0 || entriesOnDisk64 !== entries64 || disk !== 0 || cdDisk !== 0) {
    throw invalid("multi-disk (spanned) zip archives are not supported");
  }
  // Where the classic record is not saturated, it must agree with the zip64 one.
  if (
    (entries16 !== U16_MAX && entries16 !== entries64) ||
    (entriesOnDisk !== U16_MAX && entriesOnDisk !== entries64) ||
    (cdSize32 !== U32_MAX && cdSize32 !== cdSize64) ||
    (cdOffset32 !== U32_MAX && cdOffset32 !== cdOffset64)
  ) {
    throw invalid("the end record and the zip64 end record disagree");
  }
  return { entries: entries64, cdSize: cdSize64, cdOffset: cdOffset64, cdEnd: zip64Offset, zip64: true };
}

interface CentralEntry {
  name: string;
  index: number;
  flags: number;
  crc32: number;
  size: number;
  headerOffset: number;
  nameBytes: Buffer;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeName(bytes: Buffer, flags: number, index: number): string {
  if ((flags & FLAG_UTF8) === 0 && bytes.some((b) => b >= 0x80)) {
    throw invalid(`record #${index} has a non-ASCII name without the UTF-8 flag`, { index });
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw invalid(`record #${index} has a name that is not valid UTF-8`, { index });
  }
}

/** Calls `visit(id, dataStart, dataLength)` per extra field; ARCHIVE_INVALID when malformed. */
function walkExtra(
  buf: Buffer,
  start: number,
  length: number,
  where: string,
  visit: (id: number, dataStart: number, dataLength: number) => void,
): void {
  let p = start;
  const end = start + length;
  while (p < end) {
    if (p + 4 > end) throw invalid(`${where}: malformed extra field`);
    const id = buf.readUInt16LE(p);
    const len = buf.readUInt16LE(p + 2);
    if (p + 4 + len > end) throw invalid(`${where}: an extra field runs past its header`);
    visit(id, p + 4, len);
    p += 4 + len;
  }
}

function checkFlags(flags: number, method: number, where: string, details: Record<string, unknown>): void {
  if ((flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADERS)) !== 0) {
    throw invalid(`${where} is encrypted; encrypted archives are not supported`, details);
  }
  if (method !== 0) {
    throw invalid(
      `${where} is compressed (method ${method}); records must be stored uncompressed so they can be mapped in place`,
      { ...details, method },
    );
  }
}

function parseCentralDirectory(cd: Buffer, count: number, limits: ArchiveLimits): CentralEntry[] {
  const entries: CentralEntry[] = [];
  let p = 0;
  for (let index = 0; index < count; index++) {
    const where = `central directory entry #${index}`;
    if (p + CENTRAL_HEADER_SIZE > cd.length) throw invalid(`${where} runs past the central directory`, { index });
    if (cd.readUInt32LE(p) !== SIG_CENTRAL) throw invalid(`${where} has a bad signature`, { index });
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    const compressed32 = cd.readUInt32LE(p + 20);
    const size32 = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const diskStart16 = cd.readUInt16LE(p + 34);
    const offset32 = cd.readUInt32LE(p + 42);
    const length = CENTRAL_HEADER_SIZE + nameLength + extraLength + commentLength;
    if (p + length > cd.length) throw invalid(`${where} runs past the central directory`, { index });
    if (nameLength > limits.maxNameLength) {
      throw tooLarge(`${where} has a ${nameLength}-byte name (limit ${limits.maxNameLength})`, {
        index,
        limit: limits.maxNameLength,
      });
    }
    const nameBytes = cd.subarray(p + CENTRAL_HEADER_SIZE, p + CENTRAL_HEADER_SIZE + nameLength);
    const name = decodeName(nameBytes, flags, index);
    const at = { index, record: name };
    checkFlags(flags, method, `record "${name}"`, at);

    let size = size32;
    let compressed = compressed32;
    let headerOffset = offset32;
    let diskStart = diskStart16;
    let sawZip64 = false;
    walkExtra(cd, p + CENTRAL_HEADER_SIZE + nameLength, extraLength, `record "${name}"`, (id, start, len) => {
      if (id !== ZIP64_EXTRA_ID) return;
      if (sawZip64) throw invalid(`record "${name}" has two zip64 extra fields`, at);
      sawZip64 = true;
      let q = start;
      const take = (what: string): number => {
        if (q + 8 > start + len) throw invalid(`record "${name}": zip64 extra field lacks the ${what}`, at);
        const v = u64(cd, q, `record "${name}" ${what}`);
        q += 8;
        return v;
      };
      if (size32 === U32_MAX) size = take("size");
      if (compressed32 === U32_MAX) compressed = take("compressed size");
      if (offset32 === U32_MAX) headerOffset = take("header offset");
      if (diskStart16 === U16_MAX) {
        if (q + 4 > start + len) throw invalid(`record "${name}": zip64 extra field lacks the disk number`, at);
        diskStart = cd.readUInt32LE(q);
      }
    });
    if (!sawZip64 && (size32 === U32_MAX || compressed32 === U32_MAX || offset32 === U32_MAX)) {
      throw invalid(`record "${name}" has a saturated size or offset but no zip64 extra field`, at);
    }
    if (diskStart !== 0) throw invalid(`record "${name}" starts on another disk`, at);
    if (compressed !== size) {
      throw invalid(`record "${name}" claims ${compressed} stored bytes for ${size} bytes of data`, at);
    }
    entries.push({ name, index, flags, crc32, size, headerOffset, nameBytes });
    p += length;
  }
  if (p !== cd.length) {
    throw invalid(`the central directory has ${cd.length - p} bytes beyond its ${count} entries`);
  }
  return entries;
}

/** Local header bytes read in one go: fixed part, name, and the extra field torch writes (≤ 88 bytes). */
const LOCAL_READ_SLACK = 128;

async function readLocal(source: FileSource, entry: CentralEntry, cdOffset: number): Promise<ZipEntry> {
  const at = { index: entry.index, record: entry.name, offset: entry.headerOffset };
  const where = `record "${entry.name}"`;
  if (entry.headerOffset + LOCAL_HEADER_SIZE > cdOffset) {
    throw invalid(`${where}: its local header offset points past the records area`, at);
  }
  const want = Math.min(LOCAL_HEADER_SIZE + entry.nameBytes.length + LOCAL_READ_SLACK, cdOffset - entry.headerOffset);
  let head = await source.read(entry.headerOffset, want, `${where} local header`);
  if (head.readUInt32LE(0) !== SIG_LOCAL) throw invalid(`${where}: no local header at its offset`, at);
  const flags = head.readUInt16LE(6);
  const method = head.readUInt16LE(8);
  const crc32 = head.readUInt32LE(14);
  const compressed32 = head.readUInt32LE(18);
  const size32 = head.readUInt32LE(22);
  const nameLength = head.readUInt16LE(26);
  const extraLength = head.readUInt16LE(28);
  checkFlags(flags, method, where, at);
  if (flags !== entry.flags) throw invalid(`${where}: local and central flags disagree`, at);
  const headerLength = LOCAL_HEADER_SIZE + nameLength + extraLength;
  if (entry.headerOffset + headerLength > cdOffset) throw invalid(`${where}: its local header runs past the records area`, at);
  if (headerLength > head.length) head = await source.read(entry.headerOffset, headerLength, `${where} local header`);
  if (nameLength !== entry.nameBytes.length || !head.subarray(LOCAL_HEADER_SIZE, LOCAL_HEADER_SIZE + nameLength).equals(entry.nameBytes)) {
    throw invalid(`${where}: the local header names a different record`, at);
  }
  let localZip64 = false;
  walkExtra(head, LOCAL_HEADER_SIZE + nameLength, extraLength, `${where} local header`, (id) => {
    if (id === ZIP64_EXTRA_ID) localZip64 = true;
  });

  const sizeMatches = (v: number): boolean => v === entry.size || (v === U32_MAX && localZip64);
  if ((flags & FLAG_DESCRIPTOR) === 0) {
    if (crc32 !== entry.crc32 || !sizeMatches(size32) || !sizeMatches(compressed32)) {
      throw invalid(`${where}: local header and central directory disagree on CRC or size`, at);
    }
  } else if ((crc32 !== 0 && crc32 !== entry.crc32) || (size32 !== 0 && !sizeMatches(size32)) || (compressed32 !== 0 && !sizeMatches(compressed32))) {
    throw invalid(`${where}: local header and central directory disagree on CRC or size`, at);
  }

  const dataOffset = entry.headerOffset + headerLength;
  if (dataOffset % ALIGNMENT !== 0) {
    throw invalid(`${where}: its data at offset ${dataOffset} is not ${ALIGNMENT}-byte aligned, so it cannot be mapped in place`, {
      ...at,
      dataOffset,
    });
  }
  const dataEnd = dataOffset + entry.size;
  if (dataEnd > cdOffset) {
    throw invalid(`${where}: its ${entry.size} bytes at offset ${dataOffset} run past the records area`, { ...at, dataOffset });
  }
  let end = dataEnd;
  if ((flags & FLAG_DESCRIPTOR) !== 0) {
    end = dataEnd + (await descriptorLength(source, entry, dataEnd, cdOffset, localZip64, at));
  }
  return {
    name: entry.name,
    index: entry.index,
    flags,
    crc32: entry.crc32,
    size: entry.size,
    headerOffset: entry.headerOffset,
    dataOffset,
    end,
  };
}

/** Checks the data descriptor after a record's data; returns its length. */
async function descriptorLength(
  source: FileSource,
  entry: CentralEntry,
  at: number,
  cdOffset: number,
  zip64First: boolean,
  details: Record<string, unknown>,
): Promise<number> {
  const bytes = await source.read(at, Math.min(24, cdOffset - at), `record "${entry.name}" data descriptor`);
  const signed = bytes.length >= 4 && bytes.readUInt32LE(0) === SIG_DESCRIPTOR;
  const base = signed ? 4 : 0;
  const try32 = (): number | undefined =>
    base + 12 <= bytes.length &&
    bytes.readUInt32LE(base) === entry.crc32 &&
    bytes.readUInt32LE(base + 4) === entry.size &&
    bytes.readUInt32LE(base + 8) === entry.size
      ? base + 12
      : undefined;
  const try64 = (): number | undefined =>
    base + 20 <= bytes.length &&
    bytes.readUInt32LE(base) === entry.crc32 &&
    bytes.readBigUInt64LE(base + 4) === BigInt(entry.size) &&
    bytes.readBigUInt64LE(base + 12) === BigInt(entry.size)
      ? base + 20
      : undefined;
  const length = zip64First ? (try64() ?? try32()) : (try32() ?? try64());
  if (length === undefined) {
    throw invalid(`record "${entry.name}": its data descriptor is missing or disagrees with the central directory`, details);
  }
  return length;
}

/** Reads and checks the whole zip structure. */
export async function readZipStructure(source: FileSource, limits: ArchiveLimits): Promise<ZipStructure> {
  const end = await readEnd(source);
  if (end.entries === 0) throw invalid("the archive holds no records");
  if (end.entries > limits.maxRecords) {
    throw tooLarge(`the archive claims ${end.entries} records (limit ${limits.maxRecords})`, {
      records: end.entries,
      limit: limits.maxRecords,
    });
  }
  if (end.cdSize > limits.maxCentralDirectorySize) {
    throw tooLarge(`the central directory claims ${end.cdSize} bytes (limit ${limits.maxCentralDirectorySize})`, {
      size: end.cdSize,
      limit: limits.maxCentralDirectorySize,
    });
  }
  if (end.cdOffset + end.cdSize !== end.cdEnd) {
    throw invalid("the central directory's offset and size do not lead to the end record", {
      offset: end.cdOffset,
      size: end.cdSize,
    });
  }
  if (end.cdSize < end.entries * CENTRAL_HEADER_SIZE) {
    throw invalid(`a ${end.cdSize}-byte central directory cannot hold ${end.entries} records`);
  }
  const cd = await source.read(end.cdOffset, end.cdSize, "the central directory");
  const central = parseCentralDirectory(cd, end.entries, limits);

  const entries: ZipEntry[] = [];
  for (const entry of central) entries.push(await readLocal(source, entry, end.cdOffset));

  // Records may not share bytes: sorted by offset, each must end before the next begins.
  const byOffset = [...entries].sort((a, b) => a.headerOffset - b.headerOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const next = byOffset[i]!;
    if (next.headerOffset < prev.end) {
      throw invalid(`records "${prev.name}" and "${next.name}" overlap`, {
        records: [prev.name, next.name],
        offsets: [prev.headerOffset, next.headerOffset],
      });
    }
  }
  return {
    entries,
    centralDirectoryOffset: end.cdOffset,
    centralDirectorySize: end.cdSize,
    zip64: end.zip64,
    fileSize: source.size,
  };
}
