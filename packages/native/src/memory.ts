import { readFileSync } from "node:fs";

/** Sizes in kB, as /proc reports them (Rss, Pss, Private_Clean, Private_Dirty, Shared_Clean, Anonymous, ...). */
export type MemoryFields = Record<string, number>;

/**
 * This process's memory, from /proc/self/smaps_rollup. With many interpreters in one
 * process, Rss counts pages shared by several namespaces (library code, mapped
 * archives) once per mapping; Pss divides each page among the mappings that share it
 * (the physical cost); Private_Clean + Private_Dirty is what no other mapping shares.
 */
export function processMemory(): MemoryFields {
  return parseFields(readFileSync("/proc/self/smaps_rollup", "utf8").split("\n"));
}

/** Each of this process's mappings of `file`, from /proc/self/smaps. */
export function fileMappings(file: string): MemoryFields[] {
  const entries: MemoryFields[] = [];
  let current: string[] | undefined;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      if (current) entries.push(parseFields(current));
      current = line.trimEnd().endsWith(` ${file}`) ? [] : undefined;
    } else {
      current?.push(line);
    }
  }
  if (current) entries.push(parseFields(current));
  return entries;
}

function parseFields(lines: string[]): MemoryFields {
  const fields: MemoryFields = {};
  for (const line of lines) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) fields[m[1]!] = Number(m[2]);
  }
  return fields;
}
