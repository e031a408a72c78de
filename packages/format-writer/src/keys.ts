import { generateKeyPair } from "node:crypto";
import { promisify } from "node:util";

export interface SigningKeyPair {
  /** SPKI PEM: give it to readers (`openArchive(path, { publicKey })`). */
  publicKey: string;
  /** PKCS#8 PEM: keep it secret; pass it as `finish({ signingKey })`. */
  privateKey: string;
}

const generate = promisify(generateKeyPair);

/** A fresh ed25519 key pair, both halves PEM-encoded. */
export async function generateSigningKeyPair(): Promise<SigningKeyPair> {
  const { publicKey, privateKey } = await generate("ed25519", {
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { publicKey, privateKey };
}
