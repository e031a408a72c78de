/**
 * /metrics of a supervised server: every worker's exposition with its samples labelled
 * `worker="<slot>"`, and the primary's own series, merged into one valid exposition
 * (each family's HELP and TYPE once, its samples together: Prometheus refuses a family
 * that appears twice).
 *
 * Labelled, not summed: gauges per interpreter (`coil_interpreter_load`) mean nothing
 * summed over processes, a worker's counters restart from zero when it is replaced
 * (which Prometheus reads as a counter reset of that worker's series, not as the
 * service's requests going backwards), and a bad worker stays visible. The slot, not
 * the pid, is the label, so the series stay as few as the workers; sum() by the other
 * labels aggregates at query time.
 */

interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: string[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S.*)$/;

/** Merges expositions: `primary` as it is, each worker's with its `worker` label. */
export function mergeExpositions(primary: string, workers: readonly { slot: number; metrics: string }[]): string {
  const families = new Map<string, Family>();
  const add = (text: string, extraLabel: string | undefined) => {
    let current: Family | undefined;
    const family = (name: string) => {
      let found = families.get(name);
      if (!found) families.set(name, (found = { name, samples: [] }));
      return found;
    };
    for (const line of text.split("\n")) {
      const comment = /^#\s+(HELP|TYPE)\s+(\S+)\s?(.*)$/.exec(line);
      if (comment) {
        current = family(comment[2]!);
        if (comment[1] === "HELP") current.help ??= comment[3];
        else current.type ??= comment[3];
        continue;
      }
      const sample = SAMPLE.exec(line);
      if (!sample) continue; // blank lines, other comments
      const [, name, labels, value] = sample;
      // A sample belongs to the family announced above it (histogram _bucket/_sum/_count
      // included); one with no family announced is a family of its own.
      const owner = current && name!.startsWith(current.name) ? current : family(name!);
      const all = [extraLabel, labels].filter((l) => l !== undefined && l !== "").join(",");
      owner.samples.push(`${name}${all === "" ? "" : `{${all}}`} ${value}`);
    }
  };
  add(primary, undefined);
  for (const { slot, metrics } of workers) add(metrics, `worker="${slot}"`);
  const lines: string[] = [];
  for (const f of families.values()) {
    if (f.help !== undefined) lines.push(`# HELP ${f.name} ${f.help}`);
    if (f.type !== undefined) lines.push(`# TYPE ${f.name} ${f.type}`);
    lines.push(...f.samples);
  }
  return `${lines.join("\n")}\n`;
}
