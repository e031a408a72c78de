import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";

import { CoilError } from "@coil/errors";
import {
  EXTERN_MODULES_RECORD,
  openArchive,
  PYTHON_VERSION_RECORD,
  VERSION_RECORD,
  type TensorSpec,
} from "@coil/format-reader";
import { ArchiveWriter } from "@coil/format-writer";
import { acquireInterpreters, discoverPython, releaseInterpreters } from "@coil/native";

import type { Progress } from "./progress.js";

export interface PackOptions {
  /** "path/to/model.py:factory" — the factory builds the object to pack. */
  target: string;
  /** Where to write the archive. */
  output: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** torch.package patterns (globs over module names). stdlib, torch and numpy are
   * extern by default; the factory's own module is interned. */
  intern?: string[];
  extern?: string[];
  mock?: string[];
  deny?: string[];
  /** Input/output signature for the manifest. */
  inputs?: TensorSpec[];
  outputs?: TensorSpec[];
  metadata?: Record<string, string>;
  /** An ed25519 private key (PEM, or a KeyObject) to sign the manifest with. */
  signingKey?: string | Buffer;
  /** The Python executable to pack with (default: discovery, needing torch). */
  python?: string;
  progress?: Progress;
}

export interface PackResult {
  output: string;
  type: string;
  records: number;
  bytes: number;
  signed: boolean;
}

/** Parses "file.py:factory". */
export function parseTarget(target: string): { file: string; factory: string } {
  const colon = target.lastIndexOf(":");
  if (colon <= 0 || colon === target.length - 1) {
    throw new CoilError("INVALID_ARGUMENT", `expected <file.py>:<factory>, got "${target}"`);
  }
  return { file: resolve(target.slice(0, colon)), factory: target.slice(colon + 1) };
}

/**
 * Packs the object a Python factory builds into a Coil archive: torch.package
 * finds and packs what the object needs (in one interpreter), then the archive is
 * rewritten deterministically with Coil's manifest (hashes, signature, entry point).
 */
export async function packModel(options: PackOptions): Promise<PackResult> {
  const { file, factory } = parseTarget(options.target);
  const output = resolve(options.output);
  const progress = options.progress;
  const python = await discoverPython({ ...(options.python && { python: options.python }), requiredModules: ["torch"] });
  const scratch = await mkdtemp(join(tmpdir(), "coil-pack-"));
  const exported = join(scratch, "export.pt");
  const [interpreter] = await acquireInterpreters(1, python);
  try {
    progress?.step(`building ${basename(file)}:${factory} and finding what it needs`);
    const packed = await interpreter!.call<{ package: string; resource: string; type: string }>("export_package", [
      exported,
      file,
      factory,
      options.args ?? [],
      options.kwargs ?? {},
      { intern: options.intern ?? [], extern: options.extern ?? [], mock: options.mock ?? [], deny: options.deny ?? [] },
    ]);
    const source = await openArchive(exported, { verifyHashes: false });
    try {
      const copied = source.records.filter((r) => ![VERSION_RECORD, EXTERN_MODULES_RECORD, PYTHON_VERSION_RECORD].includes(r.name));
      const total = copied.reduce((sum, r) => sum + r.size, 0);
      progress?.step(`writing ${basename(output)}`, total);
      const root = basename(output).replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_.-]/g, "_") || "model";
      const writer = await ArchiveWriter.create(output, { root });
      try {
        for (const record of copied) {
          await writer.addRecord(record.name, counted(source.readChunks(record.name), progress), { size: record.size });
        }
        const summary = await writer.finish({
          entryPoint: { package: packed.package, resource: packed.resource },
          externModules: source.externs,
          ...(source.pythonVersion !== undefined && { pythonVersion: source.pythonVersion }),
          fileFormatVersion: source.version,
          ...(options.inputs && { inputs: options.inputs }),
          ...(options.outputs && { outputs: options.outputs }),
          metadata: { type: packed.type, python: python.version, ...options.metadata },
          ...(options.signingKey !== undefined && { signingKey: options.signingKey }),
        });
        progress?.done();
        return {
          output,
          type: packed.type,
          records: summary.records.length,
          bytes: summary.size,
          signed: options.signingKey !== undefined,
        };
      } catch (error) {
        await writer.abort();
        throw error;
      }
    } finally {
      await source.close();
    }
  } finally {
    await releaseInterpreters([interpreter!]);
    await rm(scratch, { recursive: true, force: true });
  }
}

async function* counted(chunks: AsyncIterable<Buffer>, progress: Progress | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    progress?.advance(chunk.length);
    yield chunk;
  }
}
