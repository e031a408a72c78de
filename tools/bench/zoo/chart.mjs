// The zoo's chart as plain SVG text: per model, Coil (1 interpreter) over plain eager
// and over TorchScript, as horizontal bars against a line at 1.0x (parity).

const SERIES = [
  { key: "coil1VsEager", label: "Coil 1 interpreter / eager", color: "#3b6fb6" },
  { key: "coil1VsTorchscript", label: "Coil 1 interpreter / TorchScript", color: "#e08a2c" },
];
const LABEL_WIDTH = 260;
const PLOT_WIDTH = 420;
const BAR = 9;
const ROW = 2 * BAR + 8;
const TOP = 34;

const escape = (text) => String(text).replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");

/** The SVG for the rows that have at least one of the two ratios; "" when none has. */
export function ratioChart(rows) {
  const shown = rows.filter((r) => SERIES.some((s) => r[s.key] != null));
  if (shown.length === 0) return "";
  const top = Math.max(1.5, ...shown.flatMap((r) => SERIES.map((s) => r[s.key] ?? 0)));
  const max = Math.ceil(top * 2) / 2; // the axis ends on a multiple of 0.5x
  const x = (ratio) => LABEL_WIDTH + (Math.min(ratio, max) / max) * PLOT_WIDTH;
  const height = TOP + shown.length * ROW + 24;
  const width = LABEL_WIDTH + PLOT_WIDTH + 60;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  SERIES.forEach((s, i) => {
    const lx = LABEL_WIDTH + i * 210;
    parts.push(`<rect x="${lx}" y="6" width="10" height="10" fill="${s.color}"/>`, `<text x="${lx + 14}" y="15">${escape(s.label)}</text>`);
  });
  for (let tick = 0; tick <= max + 1e-9; tick += 0.5) {
    const tx = x(tick).toFixed(1);
    const strong = tick === 1;
    parts.push(
      `<line x1="${tx}" y1="${TOP - 4}" x2="${tx}" y2="${height - 20}" stroke="${strong ? "#333" : "#ddd"}" stroke-width="${strong ? 1.5 : 1}"/>`,
      `<text x="${tx}" y="${height - 6}" text-anchor="middle">${tick.toFixed(1)}x</text>`,
    );
  }
  shown.forEach((r, i) => {
    const y = TOP + i * ROW;
    parts.push(`<text x="${LABEL_WIDTH - 6}" y="${y + BAR + 4}" text-anchor="end">${escape(`${r.name} (${r.stack})`)}</text>`);
    SERIES.forEach((s, j) => {
      const value = r[s.key];
      if (value == null) return;
      const by = y + j * BAR;
      parts.push(
        `<rect x="${LABEL_WIDTH}" y="${by}" width="${(x(value) - LABEL_WIDTH).toFixed(1)}" height="${BAR - 1}" fill="${s.color}"><title>${escape(`${r.name}: ${s.label} ${value.toFixed(2)}x`)}</title></rect>`,
        `<text x="${(x(value) + 3).toFixed(1)}" y="${by + BAR - 1}" font-size="9">${value.toFixed(2)}x</text>`,
      );
    });
  });
  parts.push("</svg>");
  return parts.join("\n");
}
