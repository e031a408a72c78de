import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { CoilError } from "@coil/errors";

/** Where vite builds the page (dist/page), from src/ and dist/ alike. */
export const PAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "dist", "page");

export interface PageFile {
  body: Buffer;
  type: string;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/**
 * The built page's files, read once into memory by their path under `dir` ("index.html",
 * "assets/index-abc.js"): a few tens of kB, and a request can only name a file that
 * is in this map, so no path from a client ever reaches the file system.
 */
export function readPageFiles(dir: string = PAGE_DIR): Map<string, PageFile> {
  if (!existsSync(join(dir, "index.html"))) {
    throw new CoilError(
      "PLUGIN_FAILED",
      `the dashboard's page is not built (no ${join(dir, "index.html")}): run \`npx nx run @coil/dashboard:build\``,
    );
  }
  const files = new Map<string, PageFile>();
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.set(relative(dir, path).split("\\").join("/"), { body: readFileSync(path), type: TYPES[extname(name)] ?? "application/octet-stream" });
    }
  };
  walk(dir);
  return files;
}
