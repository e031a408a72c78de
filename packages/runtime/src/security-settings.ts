/**
 * `coil serve`'s control-plane, TLS, repository and request-limit settings (flags or
 * coil.json keys), checked and read into serve() options: every file is read and
 * every combination checked before anything starts, with an error naming the flag.
 */
import { readFileSync } from "node:fs";

import { CoilError } from "@coil/errors";

import { MODEL_CONTROLS, type ModelControl } from "./access-policy.js";
import type { ServeOptions } from "./serve.js";

export interface SecuritySettings {
  modelControl?: string | undefined;
  authTokenFile?: string | undefined;
  authInference?: boolean | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  followSymlinks?: boolean | undefined;
  bodyTimeoutS?: number | undefined;
  maxPendingBodyBytes?: number | undefined;
  maxResponseBytes?: number | undefined;
}

export type SecurityServeOptions = Pick<ServeOptions, "access" | "tls" | "followSymlinks" | "bodyTimeoutMs" | "maxPendingBodyBytes" | "maxResponseBytes">;

export function securityServeOptions(settings: SecuritySettings): SecurityServeOptions {
  const { modelControl = "none", authTokenFile, authInference = false, tlsCert, tlsKey, followSymlinks } = settings;
  if (!MODEL_CONTROLS.includes(modelControl as ModelControl)) {
    throw new CoilError("INVALID_ARGUMENT", `--model-control must be one of ${MODEL_CONTROLS.join(", ")}, got "${modelControl}"`);
  }
  const token = authTokenFile === undefined ? undefined : readToken(authTokenFile);
  if (authInference && token === undefined) {
    throw new CoilError("INVALID_ARGUMENT", "--auth-inference needs --auth-token-file (the token inference requests must carry)");
  }
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw new CoilError("INVALID_ARGUMENT", "--tls-cert and --tls-key go together: give both (the certificate chain and its private key, PEM) or neither");
  }
  for (const [key, value] of Object.entries({ bodyTimeoutS: settings.bodyTimeoutS, maxPendingBodyBytes: settings.maxPendingBodyBytes, maxResponseBytes: settings.maxResponseBytes })) {
    if (value !== undefined && !(Number.isSafeInteger(value) && value > 0)) {
      throw new CoilError("INVALID_ARGUMENT", `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} must be a positive integer, got ${value}`);
    }
  }
  return {
    access: { modelControl: modelControl as ModelControl, ...(token !== undefined && { token }), authInference },
    ...(tlsCert !== undefined && tlsKey !== undefined && { tls: { cert: readPem(tlsCert, "--tls-cert"), key: readPem(tlsKey, "--tls-key") } }),
    ...(followSymlinks !== undefined && { followSymlinks }),
    ...(settings.bodyTimeoutS !== undefined && { bodyTimeoutMs: settings.bodyTimeoutS * 1000 }),
    ...(settings.maxPendingBodyBytes !== undefined && { maxPendingBodyBytes: settings.maxPendingBodyBytes }),
    ...(settings.maxResponseBytes !== undefined && { maxResponseBytes: settings.maxResponseBytes }),
  };
}

function readText(file: string, flag: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (cause) {
    throw new CoilError("INVALID_ARGUMENT", `${flag} ${file}: cannot read it (${(cause as NodeJS.ErrnoException).code ?? cause})`, { cause });
  }
}

/** The token: the file's text without surrounding whitespace (a trailing newline). */
function readToken(file: string): string {
  const token = readText(file, "--auth-token-file").trim();
  if (token === "") throw new CoilError("INVALID_ARGUMENT", `--auth-token-file ${file} is empty: it must hold the bearer token`);
  if (/\s/.test(token)) throw new CoilError("INVALID_ARGUMENT", `--auth-token-file ${file}: the token must be one word, without spaces or line breaks`);
  return token;
}

function readPem(file: string, flag: string): string {
  const pem = readText(file, flag);
  if (!pem.includes("-----BEGIN ")) throw new CoilError("INVALID_ARGUMENT", `${flag} ${file} is not PEM (no "-----BEGIN" line)`);
  return pem;
}
