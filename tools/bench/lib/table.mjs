// A table on stdout: columns as wide as their widest cell.

/**
 * `columns`: [title, (row) => cell, "l" to align left (else right)]. A row with an
 * `error` prints its `label` and the error across the table.
 */
export function printTable(columns, rows, { indent = "   ", rule = false } = {}) {
  const cells = rows.map((r) => (r.error ? [r.label, `ERROR: ${r.error}`] : columns.map(([, get]) => String(get(r) ?? ""))));
  const full = cells.filter((c) => c.length === columns.length);
  const widths = columns.map(([title], i) => Math.max(title.length, ...full.map((c) => c[i].length)));
  const line = (c) => indent + c.map((x, i) => (columns[i][2] === "l" ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join("  ");
  console.log(line(columns.map(([title]) => title)).trimEnd());
  if (rule) console.log(indent + widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(c.length === columns.length ? line(c).trimEnd() : `${indent}${c[0].padEnd(widths[0])}  ${c[1]}`);
}
