import { createHash, createPublicKey, KeyObject, verify } from "node:crypto";
import { CoilError } from "@coil/errors";
import { SIGNATURE_RECORD } from "./constants.js";

/** A key as callers hold it: a KeyObject, or PEM text / bytes (a private key stands for its public half). */
export type KeyInput = KeyObject | string | Buffer;

/** `.data/coil/signature`: an ed25519 signature over the exact bytes of the manifest record. */
export interface SignatureRecord {
  algorithm: "ed25519";
  /** The signer's raw 32-byte public key. */
  publicKey: Buffer;
  /** The raw 64-byte signature. */
  signature: Buffer;
}

/** The bytes of a signature record (one line of JSON, base64 fields). */
export function encodeSignatureRecord(record: SignatureRecord): Buffer {
  const json = JSON.stringify({
    algorithm: record.algorithm,
    publicKey: record.publicKey.toString("base64"),
    signature: record.signature.toString("base64"),
  });
  return Buffer.from(`${json}\n`, "utf8");
}

function strictBase64(value: unknown, bytes: number): Buffer | undefined {
  if (typeof value !== "string") return undefined;
  const decoded = Buffer.from(value, "base64");
  // Node's decoder skips junk; a round trip proves the text was canonical base64.
  if (decoded.length !== bytes || decoded.toString("base64") !== value) return undefined;
  return decoded;
}

/** Parses a signature record; throws ARCHIVE_SIGNATURE_INVALID when malformed. */
export function parseSignatureRecord(bytes: Uint8Array): SignatureRecord {
  const bad = (why: string): CoilError =>
    new CoilError("ARCHIVE_SIGNATURE_INVALID", `${SIGNATURE_RECORD} is malformed: ${why}`, {
      details: { record: SIGNATURE_RECORD },
    });
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw bad("not UTF-8 JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw bad("not a JSON object");
  const fields = json as Record<string, unknown>;
  if (fields["algorithm"] !== "ed25519") throw bad(`algorithm must be "ed25519"`);
  const publicKey = strictBase64(fields["publicKey"], 32);
  if (publicKey === undefined) throw bad("publicKey must be 32 bytes in base64");
  const signature = strictBase64(fields["signature"], 64);
  if (signature === undefined) throw bad("signature must be 64 bytes in base64");
  return { algorithm: "ed25519", publicKey, signature };
}

/** An ed25519 public KeyObject from its raw 32 bytes. */
export function ed25519PublicKeyFromRaw(raw: Buffer): KeyObject {
  return createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") }, format: "jwk" });
}

/** The raw 32 bytes of an ed25519 public key. */
export function rawEd25519PublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new CoilError("INVALID_ARGUMENT", "not an ed25519 public key");
  return Buffer.from(jwk.x, "base64url");
}

/** Any key input as an ed25519 public KeyObject; INVALID_ARGUMENT otherwise. */
export function toEd25519PublicKey(input: KeyInput): KeyObject {
  let key: KeyObject;
  try {
    key = input instanceof KeyObject && input.type === "public" ? input : createPublicKey(input as Parameters<typeof createPublicKey>[0]);
  } catch (cause) {
    throw new CoilError("INVALID_ARGUMENT", "publicKey is not a key (expected a KeyObject or PEM)", { cause });
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new CoilError("INVALID_ARGUMENT", `publicKey must be an ed25519 key, got ${key.asymmetricKeyType ?? "?"}`);
  }
  return key;
}

/** "sha256:<hex>" of a raw public key: how errors and statuses name a signer. */
export function keyFingerprint(rawPublicKey: Buffer): string {
  return `sha256:${createHash("sha256").update(rawPublicKey).digest("hex")}`;
}

/** True when `signature` is `publicKey`'s ed25519 signature of `message`; never throws. */
export function verifyEd25519(message: Uint8Array, rawPublicKey: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, message, ed25519PublicKeyFromRaw(rawPublicKey), signature);
  } catch {
    return false;
  }
}
