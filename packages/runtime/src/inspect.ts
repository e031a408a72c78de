import { openArchive, type KeyInput, type Manifest, type SignatureStatus } from "@coil/format-reader";

import { formatBytes } from "./progress.js";

export interface InspectReport {
  path: string;
  root: string;
  fileSize: number;
  version: number;
  pythonVersion: string | undefined;
  records: { name: string; offset: number; size: number }[];
  modules: string[];
  externs: string[];
  storages: { key: string; size: number }[];
  manifest: Manifest | undefined;
  signature: SignatureStatus;
  hashesVerified: boolean;
}

/** Opens and validates an archive (hashes, and the signature if any) and describes it. */
export async function inspectArchive(
  path: string,
  options: { publicKey?: KeyInput; verifyHashes?: boolean } = {},
): Promise<InspectReport> {
  const verifyHashes = options.verifyHashes ?? true;
  const archive = await openArchive(path, {
    verifyHashes,
    ...(options.publicKey !== undefined && { publicKey: options.publicKey }),
  });
  try {
    return {
      path: archive.path,
      root: archive.root,
      fileSize: archive.fileSize,
      version: archive.version,
      pythonVersion: archive.pythonVersion,
      records: archive.records.map(({ name, offset, size }) => ({ name, offset, size })),
      modules: archive.modules.map((m) => m.module),
      externs: [...archive.externs],
      storages: archive.storages.map(({ key, size }) => ({ key, size })),
      manifest: archive.manifest,
      signature: archive.signature,
      hashesVerified: verifyHashes && archive.manifest !== undefined,
    };
  } finally {
    await archive.close();
  }
}

/** The report as people read it. */
export function formatReport(r: InspectReport): string {
  const lines: string[] = [];
  const weights = r.storages.reduce((n, s) => n + s.size, 0);
  lines.push(`${r.path}: ${formatBytes(r.fileSize)}, folder "${r.root}/", torch.package format ${r.version}` +
    (r.pythonVersion ? `, packed with Python ${r.pythonVersion}` : ""));
  if (r.manifest) {
    const e = r.manifest.entryPoint;
    lines.push(`entry point: ${e.package}/${e.resource}${r.manifest.metadata?.type ? ` (${r.manifest.metadata.type})` : ""}`);
    for (const [label, specs] of [["inputs", r.manifest.inputs], ["outputs", r.manifest.outputs]] as const) {
      if (specs?.length) lines.push(`${label}: ${specs.map((s) => `${s.name} ${s.dtype}[${s.shape.join(", ")}]`).join("; ")}`);
    }
    const needs = r.manifest.distributions ?? [];
    if (needs.length > 0) {
      lines.push(`needs (checked when loading): ${needs.map((d) => `${d.name} ${d.version}${d.modules.join() === d.name ? "" : ` (${d.modules.join(", ")})`}`).join(", ")}`);
    }
  } else {
    lines.push("no Coil manifest (a plain torch.package archive): hashes unchecked");
  }
  lines.push(`hashes: ${r.hashesVerified ? `every record matches its SHA-256 in the manifest` : "not verified"}`);
  const s = r.signature;
  lines.push(
    `signature: ${!s.signed ? "unsigned" : `ed25519 ${s.keyFingerprint}, ${s.verified ? "valid" : "INVALID"}${s.trusted ? ", trusted key" : ", key not checked against a trusted one"}`}`,
  );
  lines.push(`modules (${r.modules.length}): ${r.modules.join(", ") || "-"}`);
  lines.push(`externs (${r.externs.length}): ${r.externs.join(", ") || "-"}`);
  lines.push(`storages (${r.storages.length}): ${formatBytes(weights)} of tensor data`);
  lines.push("records:");
  const width = Math.max(...r.records.map((x) => x.name.length), 4);
  for (const x of r.records) lines.push(`  ${x.name.padEnd(width)}  ${formatBytes(x.size).padStart(9)}  @${x.offset}`);
  return lines.join("\n");
}
