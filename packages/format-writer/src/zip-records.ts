/**
 * Zip structures laid out byte for byte as torch's PyTorchFileWriter (miniz with
 * MZ_ZIP_FLAG_WRITE_ZIP64) writes them:
 *
 * - local header: version 0, flags 0x0808 (data descriptor + UTF-8), method 0,
 *   time/date 0, CRC and sizes 0 (they follow the data, in a data descriptor);
 * - local extra: a zip64 field (id 0x0001: the size and a compressed size of 0
 *   if the size is >= 0xFFFFFFFF, the header offset if it is >= 0xFFFFFFFF), then the padding field
 *   "FB" + u16 length + that many 'Z' bytes, sized so the data starts at a
 *   multiple of 64;
 * - data descriptor: "PK\x07\x08", CRC, then compressed and uncompressed sizes,
 *   64-bit when the local header has a zip64 field, else 32-bit;
 * - central entry: version 0/0, flags 0x0808, no timestamps, a zip64 extra
 *   field when the size or offset needs one, no comment;
 * - always a zip64 end record (made by 0x031E, needs 45) and locator, then the
 *   classic end record with saturated fields where they overflow.
 */
import { ALIGNMENT } from "@coil/format-reader";

const FLAGS = 0x0808;
const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** Tests lower this to exercise the zip64 forms without writing 4 GiB (miniz's test is `>= 0xFFFFFFFF`). */
export const zip64Limits = { threshold: U32_MAX };

export function needsZip64Size(size: number): boolean {
  return size >= zip64Limits.threshold;
}

export function needsZip64Offset(offset: number): boolean {
  return offset >= zip64Limits.threshold;
}

/** `compressed` is what miniz knows when it writes the field: 0 in the local header (the size follows the data). */
function zip64Extra(size: number | undefined, offset: number | undefined, compressed = size): Buffer {
  const fields = (size === undefined ? 0 : 2) + (offset === undefined ? 0 : 1);
  const buf = Buffer.alloc(4 + 8 * fields);
  buf.writeUInt16LE(0x0001, 0);
  buf.writeUInt16LE(8 * fields, 2);
  let p = 4;
  if (size !== undefined) {
    buf.writeBigUInt64LE(BigInt(size), p); // uncompressed
    buf.writeBigUInt64LE(BigInt(compressed ?? 0), p + 8); // compressed
    p += 16;
  }
  if (offset !== undefined) buf.writeBigUInt64LE(BigInt(offset), p);
  return buf;
}

/** The local header (with its name and extra field) for a record at `offset`; data follows it, aligned. */
export function localHeader(nameBytes: Buffer, size: number, offset: number): { header: Buffer; zip64: boolean } {
  const bigSize = needsZip64Size(size);
  const bigOffset = needsZip64Offset(offset);
  const zip64 = bigSize || bigOffset;
  const z64 = zip64 ? zip64Extra(bigSize ? size : undefined, bigOffset ? offset : undefined, 0) : Buffer.alloc(0);
  const start = offset + 30 + nameBytes.length + z64.length + 4;
  const padding = (ALIGNMENT - (start % ALIGNMENT)) % ALIGNMENT;
  const header = Buffer.alloc(30 + nameBytes.length + z64.length + 4 + padding);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(0, 4); // version needed (miniz: 0 for stored)
  header.writeUInt16LE(FLAGS, 6);
  header.writeUInt16LE(0, 8); // method: stored
  // time, date, crc, sizes: 0
  header.writeUInt16LE(nameBytes.length, 26);
  header.writeUInt16LE(z64.length + 4 + padding, 28);
  nameBytes.copy(header, 30);
  let p = 30 + nameBytes.length;
  z64.copy(header, p);
  p += z64.length;
  header.write("FB", p, "latin1");
  header.writeUInt16LE(padding, p + 2);
  header.fill(0x5a /* 'Z' */, p + 4);
  return { header, zip64 };
}

export function dataDescriptor(crc: number, size: number, zip64: boolean): Buffer {
  const buf = Buffer.alloc(zip64 ? 24 : 16);
  buf.writeUInt32LE(0x08074b50, 0);
  buf.writeUInt32LE(crc, 4);
  if (zip64) {
    buf.writeBigUInt64LE(BigInt(size), 8);
    buf.writeBigUInt64LE(BigInt(size), 16);
  } else {
    buf.writeUInt32LE(size, 8);
    buf.writeUInt32LE(size, 12);
  }
  return buf;
}

export function centralEntry(nameBytes: Buffer, crc: number, size: number, offset: number): Buffer {
  const bigSize = needsZip64Size(size);
  const bigOffset = needsZip64Offset(offset);
  const z64 = bigSize || bigOffset ? zip64Extra(bigSize ? size : undefined, bigOffset ? offset : undefined) : Buffer.alloc(0);
  const buf = Buffer.alloc(46 + nameBytes.length + z64.length);
  buf.writeUInt32LE(0x02014b50, 0);
  buf.writeUInt16LE(0, 4); // version made by
  buf.writeUInt16LE(0, 6); // version needed
  buf.writeUInt16LE(FLAGS, 8);
  buf.writeUInt16LE(0, 10); // stored
  buf.writeUInt32LE(crc, 16);
  buf.writeUInt32LE(bigSize ? U32_MAX : size, 20);
  buf.writeUInt32LE(bigSize ? U32_MAX : size, 24);
  buf.writeUInt16LE(nameBytes.length, 28);
  buf.writeUInt16LE(z64.length, 30);
  // comment length, disk, attributes: 0
  buf.writeUInt32LE(bigOffset ? U32_MAX : offset, 42);
  nameBytes.copy(buf, 46);
  z64.copy(buf, 46 + nameBytes.length);
  return buf;
}

/** Zip64 end record, zip64 locator and end record, for a central directory at `cdOffset`. */
export function endRecords(count: number, cdOffset: number, cdSize: number): Buffer {
  const zip64Offset = cdOffset + cdSize;
  const buf = Buffer.alloc(56 + 20 + 22);
  buf.writeUInt32LE(0x06064b50, 0);
  buf.writeBigUInt64LE(44n, 4);
  buf.writeUInt16LE(0x031e, 12);
  buf.writeUInt16LE(0x002d, 14);
  buf.writeBigUInt64LE(BigInt(count), 24);
  buf.writeBigUInt64LE(BigInt(count), 32);
  buf.writeBigUInt64LE(BigInt(cdSize), 40);
  buf.writeBigUInt64LE(BigInt(cdOffset), 48);
  buf.writeUInt32LE(0x07064b50, 56);
  buf.writeBigUInt64LE(BigInt(zip64Offset), 64);
  buf.writeUInt32LE(1, 72);
  buf.writeUInt32LE(0x06054b50, 76);
  buf.writeUInt16LE(Math.min(count, U16_MAX), 84);
  buf.writeUInt16LE(Math.min(count, U16_MAX), 86);
  buf.writeUInt32LE(needsZip64Size(cdSize) ? U32_MAX : cdSize, 88);
  buf.writeUInt32LE(needsZip64Offset(cdOffset) ? U32_MAX : cdOffset, 92);
  return buf;
}
