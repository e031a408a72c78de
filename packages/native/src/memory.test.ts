import { closeSync, fsyncSync, mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { mapFile } from "./map-file.js";
import { fileMappings, processMemory } from "./memory.js";

describe("memory introspection", () => {
  it("reads this process's totals", () => {
    const m = processMemory();
    expect(m.Rss).toBeGreaterThan(0);
    expect(m.Pss).toBeGreaterThan(0);
    expect(m.Pss).toBeLessThanOrEqual(m.Rss!);
  });

  it("finds each mapping of a file, and two mappings share their pages", () => {
    const file = join(mkdtempSync(join(tmpdir(), "coil-map-")), "data.bin");
    writeFileSync(file, Buffer.alloc(64 * 1024, 7));
    // Flushed, so the page cache's pages are clean: only copies show as dirty.
    const fd = openSync(file, "r+");
    fsyncSync(fd);
    closeSync(fd);
    expect(fileMappings(file)).toEqual([]);
    const one = mapFile(file);
    const two = mapFile(file);
    let sum = 0;
    for (let i = 0; i < one.length; i += 4096) sum += one[i]! + two[i]!; // touch every page of both
    expect(sum).toBe(2 * 7 * 16);
    const mappings = fileMappings(file);
    expect(mappings).toHaveLength(2);
    for (const m of mappings) {
      expect(m.Rss).toBe(64);
      expect(m.Shared_Clean).toBe(64); // the same page-cache pages, twice
      expect(m.Pss).toBe(32);
    }
    two[0] = 1; // copy-on-write: this mapping's first page becomes its own
    expect(one[0]).toBe(7);
    expect(fileMappings(file).map((m) => m.Private_Dirty).sort()).toEqual([0, 4]);
  });
});
