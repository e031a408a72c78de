import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";

import { CoilError } from "@coil/errors";
import {
  EXTERN_MODULES_RECORD,
  openArchive,
  PYTHON_VERSION_RECORD,
  VERSION_RECORD,
  type Manifest,
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
  /** torch.package patterns (globs over module names), applied before the automatic
   * ones: modules under `root` are interned; installed distributions, the standard
   * library, torch and numpy are extern. */
  intern?: string[];
  extern?: string[];
  mock?: string[];
  deny?: string[];
  /** The folder whose modules are the model's own, packed as source (default: the model file's). */
  root?: string;
  /** The function in the model's file that returns example inputs (a tuple of tensors);
   * default `example_inputs` when the file defines it. The signature is inferred from them. */
  example?: string;
  /** Input/output signature for the manifest; each, when given, replaces the inferred one. */
  inputs?: TensorSpec[];
  outputs?: TensorSpec[];
  metadata?: Record<string, string>;
  /** An ed25519 private key (PEM, or a KeyObject) to sign the manifest with. */
  signingKey?: string | Buffer;
  /** The Python executable to pack with (default: discovery, needing torch). */
  python?: string;
  progress?: Progress;
}

/** What packing did with one group of modules, and why. */
export interface PackDecision {
  group: string;
  action: "intern" | "extern" | "mock";
  why: string;
  modules: string[];
}

export type RequiredDistribution = NonNullable<Manifest["distributions"]>[number];

export interface PackResult {
  output: string;
  type: string;
  records: number;
  bytes: number;
  signed: boolean;
  decisions: PackDecision[];
  distributions: RequiredDistribution[];
  /** The signature written to the manifest. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Where each came from. */
  signature: { inputs: SignatureSource; outputs: SignatureSource };
  /** What the user should know (e.g. that the served metadata will be empty). */
  warnings: string[];
}

export type SignatureSource = "given" | "inferred" | "none";

/** What the Python side returns (coil_package.export). */
interface Exported {
  package: string;
  resource: string;
  type: string;
  decisions: PackDecision[];
  distributions: RequiredDistribution[];
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[]; dynamicBatch: boolean } | null;
  /** Why the module's own example_inputs() gave no signature. */
  signatureNote: string | null;
  /** What packing changed in the model, for the user (parametrizations baked in). */
  notes: string[];
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
    const packed = await interpreter!.call<Exported>("export_package", [
      exported,
      file,
      factory,
      options.args ?? [],
      options.kwargs ?? {},
      {
        intern: options.intern ?? [],
        extern: options.extern ?? [],
        mock: options.mock ?? [],
        deny: options.deny ?? [],
        root: options.root === undefined ? null : resolve(options.root),
        example: options.example ?? null,
        // Given in full, the signature needs no run of the model.
        infer: !(options.inputs?.length && options.outputs?.length),
      },
    ]);
    const signature = chooseSignature(options, packed, basename(file));
    signature.warnings.unshift(...(packed.notes ?? []));
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
          ...(signature.inputs.length > 0 && { inputs: signature.inputs }),
          ...(signature.outputs.length > 0 && { outputs: signature.outputs }),
          metadata: { type: packed.type, python: python.version, ...options.metadata },
          ...(packed.distributions.length > 0 && { distributions: packed.distributions }),
          ...(options.signingKey !== undefined && { signingKey: options.signingKey }),
        });
        progress?.done();
        return {
          output,
          type: packed.type,
          records: summary.records.length,
          bytes: summary.size,
          signed: options.signingKey !== undefined,
          decisions: packed.decisions,
          distributions: packed.distributions,
          ...signature,
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

/** The given signature where there is one, else the inferred one; and what to tell the user. */
function chooseSignature(
  options: PackOptions,
  { signature: inferred, signatureNote }: Pick<Exported, "signature" | "signatureNote">,
  file: string,
): Pick<PackResult, "inputs" | "outputs" | "signature" | "warnings"> {
  const pick = (given: TensorSpec[] | undefined, found: TensorSpec[] | undefined) =>
    given?.length ? { specs: given, source: "given" as const } : found ? { specs: found, source: "inferred" as const } : { specs: [], source: "none" as const };
  const inputs = pick(options.inputs, inferred?.inputs);
  const outputs = pick(options.outputs, inferred?.outputs);
  const missing = [inputs.source === "none" && "inputs", outputs.source === "none" && "outputs"].filter(Boolean);
  const warnings = signatureNote ? [signatureNote] : [];
  if (missing.length > 0) {
    warnings.push(
      `no signature for the model's ${missing.join(" and ")}: servers will list ${missing.map((m) => `"${m}": []`).join(" and ")} in its metadata, ` +
        `so Triton/KServe clients cannot build a request from it. Define example_inputs() in ${file} ` +
        "(returning a tuple of tensors the model takes), name such a function with --example NAME, " +
        "or give --input name:dtype:d0,d1,... and --output-spec name:dtype:d0,...",
    );
  }
  return { inputs: inputs.specs, outputs: outputs.specs, signature: { inputs: inputs.source, outputs: outputs.source }, warnings };
}

/** The decisions as a table people read: module group, action, why. */
export function formatDecisions(decisions: readonly PackDecision[]): string {
  const order = { intern: 0, mock: 1, extern: 2 };
  const rows = [...decisions]
    .sort((a, b) => order[a.action] - order[b.action] || a.group.localeCompare(b.group))
    .map((d) => [d.modules.length > 1 ? `${d.group} (${d.modules.length} modules)` : d.group, d.action, d.why]);
  const table = [["modules", "action", "why"], ...rows];
  const widths = [0, 1].map((i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]}`).join("\n");
}

async function* counted(chunks: AsyncIterable<Buffer>, progress: Progress | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    progress?.advance(chunk.length);
    yield chunk;
  }
}
