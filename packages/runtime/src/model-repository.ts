import { constants, type Stats } from "node:fs";
import { lstat, open, readdir, realpath, stat } from "node:fs/promises";
import { extname, join, relative, sep } from "node:path";

import { CoilError, isCoilError } from "@coil/errors";
import { openArchive } from "@coil/format-reader";

/** One version of a model found in a repository folder. */
export interface RepositoryEntry {
  name: string;
  version: string;
  path: string;
}

/** Something in the repository that is not served, and why. */
export interface SkippedFile {
  path: string;
  reason: string;
}

export interface ScanOptions {
  /** Serve symbolic links that lead out of the repository folder too. Default false:
   * whoever can make a link in the repository could otherwise have any archive on the
   * machine run as the server. Links that stay inside it are followed either way. */
  followSymlinks?: boolean;
}

export interface RepositoryScan {
  /** Sorted by name, then version (numerically). */
  entries: RepositoryEntry[];
  skipped: SkippedFile[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const ZIP_MAGIC = Buffer.from("PK\x03\x04", "latin1");
/** The file KServe's model agent writes next to a model it downloaded: SUCCESS.<sha256 of its spec>. */
const KSERVE_MARKER = /(^|\/)SUCCESS\.[0-9a-f]{64}$/;

/**
 * Lists the models in a repository folder, as Triton lays one out:
 *   <repo>/<name>.<ext>                     version "1"
 *   <repo>/<name>/<version>/<any file>      numeric version folders, one archive each
 *   <repo>/<name>/<any file>                version "1": KServe's layout (its model agent and
 *                                           storage initializer put a model's files there)
 * An archive is a `.coil` file, or any other zip with torch.package's layout (a stock
 * `model.pt` written by torch.package's PackageExporter, a `.zip`, ...); its name is the
 * file's without the extension. Everything else is skipped and said why: files that are
 * not torch.package archives (a torch.save checkpoint is a zip too, of weights alone),
 * names outside [A-Za-z0-9_.-], a second archive of the same name, non-regular files
 * (FIFOs, sockets, devices: never opened), symbolic links out of the repository
 * (unless options.followSymlinks).
 */
export async function scanRepository(root: string, options: ScanOptions = {}): Promise<RepositoryScan> {
  let names: string[];
  let realRoot: string;
  try {
    names = await readdir(root);
    realRoot = await realpath(root);
  } catch (cause) {
    throw new CoilError("INVALID_ARGUMENT", `cannot read the model repository ${root}`, { cause });
  }
  const entries: RepositoryEntry[] = [];
  const skipped: SkippedFile[] = [];
  const skip = (path: string, reason: string) => skipped.push({ path, reason });
  const look = (path: string) => lookAt(path, realRoot, options.followSymlinks ?? false);
  // .coil first, so that it wins over another archive of the same name.
  for (const entry of names.sort(byExtensionThenName)) {
    const path = join(root, entry);
    const info = await look(path);
    if (typeof info === "string") {
      skip(path, info);
      continue;
    }
    if (info.isDirectory()) {
      if (!NAME.test(entry)) skip(path, `a model folder's name must match ${NAME.source}`);
      else if (entries.some((e) => e.name === entry)) skip(path, `model "${entry}" is already served from another archive`);
      else entries.push(...(await scanVersions(entry, path, skip, look)));
      continue;
    }
    const problem = await archiveProblem(path, info);
    const name = entry.slice(0, entry.length - extname(entry).length);
    if (problem !== undefined) skip(path, problem);
    else if (!NAME.test(name)) skip(path, `a model's name must match ${NAME.source}: rename the file`);
    else if (entries.some((e) => e.name === name)) skip(path, `model "${name}" is already served from another archive`);
    else entries.push({ name, version: "1", path });
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : Number(a.version) - Number(b.version)));
  return { entries, skipped };
}

/** A path's stats (a link's target's), or why it is not looked into: a link out of
 * the repository, a broken link, an unreadable path. */
async function lookAt(path: string, realRoot: string, followSymlinks: boolean): Promise<Stats | string> {
  let info: Stats;
  try {
    info = await lstat(path);
  } catch {
    return "cannot be read";
  }
  if (!info.isSymbolicLink()) return info;
  let target: string;
  try {
    target = await realpath(path);
  } catch {
    return "a symbolic link to nothing (or to something unreadable)";
  }
  if (!followSymlinks && target !== realRoot && !target.startsWith(realRoot + sep)) {
    return `a symbolic link out of the repository, to ${target}: not followed (coil serve --follow-symlinks to serve it)`;
  }
  return stat(path).catch(() => "cannot be read");
}

async function scanVersions(
  name: string,
  folder: string,
  skip: (path: string, reason: string) => void,
  look: (path: string) => Promise<Stats | string>,
): Promise<RepositoryEntry[]> {
  const entries: RepositoryEntry[] = [];
  const numeric = (v: string) => (/^\d{1,9}$/.test(v) ? Number(v) : Infinity);
  const versions = (await readdir(folder).catch(() => [])).sort((a, b) => numeric(a) - numeric(b) || (a < b ? -1 : 1));
  const loose: string[] = [];
  for (const version of versions) {
    const path = join(folder, version);
    const info = await look(path);
    if (typeof info === "string") {
      skip(path, info);
      continue;
    }
    if (!/^\d{1,9}$/.test(version)) {
      if (info.isDirectory()) skip(path, "not a version folder (versions are numbers: <model>/1/model.coil)");
      else loose.push(version);
      continue;
    }
    const files = (await readdir(path).catch(() => [])).map((file) => join(version, file));
    const served = await pickArchive(folder, files, `version ${version} of "${name}"`, skip, look);
    if (served !== undefined) entries.push({ name, version, path: served });
  }
  // Files straight in the model folder, as KServe's model agent lays a model out
  // (<repo>/<name>/model.coil next to its SUCCESS.<sha256> marker): version 1.
  const versionOne = entries.find((e) => e.version === "1");
  const served = await pickArchive(folder, loose, `version 1 of "${name}"`, skip, look, versionOne && relative(folder, versionOne.path));
  if (served !== undefined) entries.unshift({ name, version: "1", path: served });
  return entries;
}

/** The first archive among `files` (paths relative to `folder`, .coil first), or
 * undefined; every other file is skipped, saying why. `taken`: the version is already
 * served from that file (relative to `folder`). */
async function pickArchive(
  folder: string,
  files: string[],
  version: string,
  skip: (path: string, reason: string) => void,
  look: (path: string) => Promise<Stats | string>,
  taken?: string,
): Promise<string | undefined> {
  let served = taken;
  for (const file of files.sort(byExtensionThenName)) {
    const archive = join(folder, file);
    const info = await look(archive);
    const problem = typeof info === "string" ? info : KSERVE_MARKER.test(file) ? "KServe's model agent's download marker" : await archiveProblem(archive, info);
    if (problem !== undefined) skip(archive, problem);
    else if (served !== undefined) skip(archive, `${version} is served from ${served}`);
    else served = file;
  }
  return served === taken || served === undefined ? undefined : join(folder, served);
}

/** Why a path cannot be served as an archive, or undefined if it can be. A `.coil`
 * file is taken as one (loading says what is wrong with it); any other file must be a
 * zip with torch.package's layout. */
async function archiveProblem(path: string, info: Stats): Promise<string | undefined> {
  if (!info.isFile()) return `not a regular file (${fileKind(info)}): not opened`;
  if (path.endsWith(".coil")) return undefined;
  const head = Buffer.alloc(ZIP_MAGIC.length);
  try {
    // O_NONBLOCK: should a FIFO have taken the file's place since, opening it must not
    // wait for a writer.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await handle.read(head, 0, head.length, 0);
    } finally {
      await handle.close();
    }
  } catch {
    return "cannot be read";
  }
  if (!head.equals(ZIP_MAGIC)) return "not an archive (neither .coil nor a zip)";
  try {
    await (await openArchive(path, { verifyHashes: false })).close();
    return undefined;
  } catch (error) {
    const reason = isCoilError(error) ? error.message : String(error);
    return /not a torch\.package archive/.test(reason)
      ? `${reason} (a torch.save checkpoint holds weights alone: pack the model with coil pack)`
      : reason;
  }
}

function fileKind(info: Stats): string {
  if (info.isFIFO()) return "a FIFO";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "a device";
  return info.isDirectory() ? "a folder" : "not a file";
}

function byExtensionThenName(a: string, b: string): number {
  const rank = (f: string) => (f.endsWith(".coil") ? 0 : 1);
  return rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0);
}
