// The zoo's report: one row per model from what its child measured, the table's
// columns (printed by lib/table.mjs and written as Markdown from the same list), the
// failures with why, and docs/zoo.md.
import { formatMachine } from "../lib/machine.mjs";
import { formatMs, formatRate, formatRatio } from "../lib/format.mjs";
import { ratioChart } from "./chart.mjs";
import { ratiosOf } from "./interleaved.mjs";

/** A step as a cell: "ok", "no" (why: in the failures), or "" when it did not run. */
const okCell = (s) => (s === undefined ? "" : s.ok ? "ok" : "no");
const rate = (s) => (s?.ok ? s.callsPerSecond : null);
const ratio = (a, b) => (a != null && b ? a / b : null);
/** An accelerated step's rate, only where every interpreter ran the accelerated form (else it measured eager). */
const acceleratedRate = (s) => (s?.ok && s.acceleration?.active ? s.callsPerSecond : null);

/** One flat row per model: what the table, the chart and docs/zoo.json show. */
export function modelRow(model, measured) {
  const py = measured.python ?? {};
  const coil1 = measured.coil1;
  const row = {
    name: model.name,
    stack: model.stack,
    family: model.family,
    torch: py.torch ?? null,
    pack: measured.pack ? { ok: measured.pack.ok } : undefined,
    equal: coil1?.ok ? { ok: coil1.equal, maxError: coil1.maxError } : coil1,
    script: py.script,
    trace: py.trace,
    export: py.export,
    eager: py.eager?.ok ? py.eager.value.callsPerSecond : null,
    eagerNoTrim: rate(measured.eagerNoTrim),
    torchscript: py.torchscript?.ok ? py.torchscript.value.callsPerSecond : null,
    torchscriptVia: py.torchscript?.via ?? null,
    compile: py.compile?.ok ? py.compile.value.callsPerSecond : null,
    onnx: py.onnx ? { ok: py.onnx.ok, via: py.onnx.value ?? null } : undefined,
    onnxruntime: py.onnxruntime?.ok ? py.onnxruntime.value.callsPerSecond : null,
    onnxruntimeMaxError: py.onnxruntime?.ok ? py.onnxruntime.value.maxError : null,
    onnxruntimeNode: rate(measured.onnxruntimeNode),
    onnxruntimeNodeBest: measured.onnxruntimeNode?.ok ? measured.onnxruntimeNode.best : null,
    onnxruntimeNodeMaxError: measured.onnxruntimeNode?.ok ? measured.onnxruntimeNode.maxError : null,
    coil1: rate(coil1),
    coil1x2: coil1?.ok ? (coil1.twoCallers?.callsPerSecond ?? null) : null,
    eager8: py.eager8?.ok ? py.eager8.value.callsPerSecond : null,
    coil1b8: rate(measured.coil1b8),
    coilN: rate(measured.coilN),
    coil1Compile: acceleratedRate(measured.coil1Compile),
    coil1CompileX2: acceleratedRate(measured.coil1Compile) === null ? null : (measured.coil1Compile.twoCallers?.callsPerSecond ?? null),
    coilNCompile: acceleratedRate(measured.coilNCompile),
    coil1Ort: acceleratedRate(measured.coil1Ort),
    coilNOrt: acceleratedRate(measured.coilNOrt),
    processes: rate(measured.processes),
    interpreters: measured.coilN?.interpreters ?? measured.processes?.processes ?? null,
    pssMbInterpreters: measured.coilN?.ok ? measured.coilN.pssMb : null,
    pssMbProcesses: measured.processes?.ok ? measured.processes.pssMb : null,
    otherCpu: Math.max(0, processesOtherCpu(measured.processes), ...[py.eager?.value, coil1, measured.coilN].map((s) => s?.otherCpu ?? 0)),
    // Like for like, from interleaved rounds (zoo/interleaved.mjs): per ratio its median and range.
    interleaved: measured.interleaved?.ok ? interleavedOf(measured.interleaved) : null,
    failures: failuresOf(measured),
  };
  row.coil1VsEager = ratio(row.coil1, row.eager);
  row.coil1VsEagerNoTrim = ratio(row.coil1, row.eagerNoTrim);
  row.coil1x2VsEager = ratio(row.coil1x2, row.eager);
  row.coil1VsEagerB8 = ratio(row.coil1b8, row.eager8);
  row.coil1VsTorchscript = ratio(row.coil1, row.torchscript);
  row.coilNVsProcesses = ratio(row.coilN, row.processes);
  row.coil1CompileVsCompile = ratio(row.coil1Compile, row.compile);
  row.coil1CompileX2VsCompile = ratio(row.coil1CompileX2, row.compile);
  row.coilNOrtVsOrtNodeBest = ratio(row.coilNOrt, row.onnxruntimeNodeBest?.callsPerSecond);
  // Where the model had interleaved rounds, its ratios are theirs (the rates above were
  // measured minutes apart: docs/engine.md, "What the host costs a call"); their eager
  // is the no-trim one.
  row.ratiosFrom = row.interleaved ? "interleaved rounds" : "rates measured one after another";
  for (const [key, value] of Object.entries(row.interleaved?.ratios ?? {})) row[key] = value.median;
  if (row.interleaved?.ratios?.coil1VsEager) row.coil1VsEagerNoTrim = row.interleaved.ratios.coil1VsEager.median;
  return row;
}

/** Other processes' CPU while the N plain processes ran: each of them counts its N - 1
 * siblings, which are the measurement, as other processes. */
function processesOtherCpu(processes) {
  return processes?.ok ? Math.max(0, (processes.otherCpu ?? 0) - (processes.processes - 1)) : 0;
}

/** The rounds' rates as medians, and every ratio made again from them (a ratio added since a model was measured shows too). */
function interleavedOf({ rounds, rates, skipped, rateMethod = "whole window" }) {
  const range = ({ median, min, max }) => ({ median, min, max });
  const perRound = Object.fromEntries(Object.entries(rates).map(([name, r]) => [name, r.rounds]));
  return {
    rounds,
    rates: Object.fromEntries(Object.entries(rates).map(([name, r]) => [name, r.median])),
    ratios: Object.fromEntries(Object.entries(ratiosOf(perRound)).map(([key, r]) => [key, range(r)])),
    skipped,
    rateMethod,
  };
}

/** A model whose child did not answer at all. */
export function failedRow(model, error) {
  return { ...modelRow(model, {}), failures: [["run", error]] };
}

function failuresOf(measured) {
  const out = [];
  const add = (step, s) => s && !s.ok && out.push([step, s.error]);
  add("python", measured.python);
  const py = measured.python ?? {};
  for (const step of ["eager", "eager8", "script", "trace", "export", "torchscript", "compile", "onnx", "onnxruntime"]) add(step, py[step]);
  add("coil 1 batch 8", measured.coil1b8);
  add("onnxruntime-node", measured.onnxruntimeNode);
  add("pack", measured.pack);
  add("coil 1", measured.coil1);
  if (measured.coil1?.ok && !measured.coil1.equal) out.push(["== eager", `max abs error ${measured.coil1.maxError} > 1e-4`]);
  add("coil N", measured.coilN);
  for (const [step, s] of [
    ["coil 1 + compile", measured.coil1Compile],
    ["coil N + compile", measured.coilNCompile],
    ["coil 1 + onnxruntime", measured.coil1Ort],
    ["coil N + onnxruntime", measured.coilNOrt],
  ]) {
    add(step, s);
    if (s?.ok && !s.acceleration?.active) out.push([step, `stayed eager: ${s.acceleration?.reason ?? "no reason given"}`]);
    else if (s?.ok && !s.equal && s.equal !== undefined) out.push([step, `max abs error ${s.maxError} against eager`]);
  }
  add("N processes", measured.processes);
  add("interleaved rounds", measured.interleaved);
  for (const [group, why] of Object.entries(measured.interleaved?.skipped ?? {})) out.push([`interleaved ${group}`, why]);
  return out;
}

/** The table's columns: [title, cell, "l" for left-aligned]. */
export const COLUMNS = [
  ["model", (r) => r.name, "l"],
  ["stack", (r) => r.stack, "l"],
  ["family", (r) => r.family, "l"],
  ["pack", (r) => okCell(r.pack)],
  ["== eager", (r) => (r.equal?.ok ? `ok ${r.equal.maxError.toExponential(0)}` : okCell(r.equal))],
  ["script", (r) => okCell(r.script)],
  ["trace", (r) => okCell(r.trace)],
  ["export", (r) => okCell(r.export)],
  ["eager/s", (r) => formatRate(r.eager)],
  ["TS/s", (r) => formatRate(r.torchscript)],
  ["compile/s", (r) => formatRate(r.compile)],
  ["onnx", (r) => okCell(r.onnx)],
  ["ORT py/s", (r) => formatRate(r.onnxruntime)],
  ["ORT node/s", (r) => formatRate(r.onnxruntimeNode)],
  ["coil 1/s", (r) => formatRate(r.coil1)],
  ["coil N/s", (r) => formatRate(r.coilN)],
  ["N procs/s", (r) => formatRate(r.processes)],
  ["coil1/eager", (r) => formatRatio(r.coil1VsEager)],
  ["eager no-trim/s", (r) => formatRate(r.eagerNoTrim)],
  ["coil1/eager no-trim", (r) => formatRatio(r.coil1VsEagerNoTrim)],
  ["coil 1 ×2 callers/s", (r) => formatRate(r.coil1x2)],
  ["coil1×2/eager", (r) => formatRatio(r.coil1x2VsEager)],
  ["coil1+compile/s", (r) => formatRate(r.coil1Compile)],
  ["coil1+compile/compile", (r) => formatRatio(r.coil1CompileVsCompile)],
  ["coil1+compile ×2/compile", (r) => formatRatio(r.coil1CompileX2VsCompile)],
  ["coilN+compile/s", (r) => formatRate(r.coilNCompile)],
  ["coil1+ORT/s", (r) => formatRate(r.coil1Ort)],
  ["coilN+ORT/s", (r) => formatRate(r.coilNOrt)],
  ["ORT node best/s", (r) => (r.onnxruntimeNodeBest ? `${formatRate(r.onnxruntimeNodeBest.callsPerSecond)} (${r.onnxruntimeNodeBest.intraOpThreads}t×${r.onnxruntimeNodeBest.callers})` : "")],
  ["coilN+ORT/ORT node best", (r) => formatRatio(r.coilNOrtVsOrtNodeBest)],
  ["eager b8/s", (r) => formatRate(r.eager8)],
  ["coil1 b8/s", (r) => formatRate(r.coil1b8)],
  ["coil1/eager b8", (r) => formatRatio(r.coil1VsEagerB8)],
  ["coil1/TS", (r) => formatRatio(r.coil1VsTorchscript)],
  ["coilN/procs", (r) => formatRatio(r.coilNVsProcesses)],
  ["Pss N interp MB", (r) => (r.pssMbInterpreters == null ? "" : Math.round(r.pssMbInterpreters))],
  ["Pss N procs MB", (r) => (r.pssMbProcesses == null ? "" : Math.round(r.pssMbProcesses))],
];

/** A like-for-like ratio as "0.91x (0.88-0.95)": the median over the rounds and their range. */
const interleavedCell = (key) => (r) => {
  const x = r.interleaved?.ratios?.[key];
  return x ? `${formatRatio(x.median)} (${x.min.toFixed(2)}–${x.max.toFixed(2)})` : "";
};

/** The like-for-like table: ratios from interleaved rounds, plain eager's time a call beside them. */
export const INTERLEAVED_COLUMNS = [
  ["model", (r) => r.name, "l"],
  ["stack", (r) => r.stack, "l"],
  ["eager ms/call", (r) => (r.interleaved?.rates?.eager ? formatMs(1e3 / r.interleaved.rates.eager) : "")],
  ["coil1/eager", interleavedCell("coil1VsEager")],
  ["coil1×2/eager", interleavedCell("coil1x2VsEager")],
  ["coil1/TS", interleavedCell("coil1VsTorchscript")],
  ["eager/TS", interleavedCell("eagerVsTorchscript")],
  ["coilN/N procs", interleavedCell("coilNVsProcesses")],
  ["coil1+compile/compile", interleavedCell("coil1CompileVsCompile")],
  ["coil1+compile×2/compile", interleavedCell("coil1CompileX2VsCompile")],
  ["coilN+ORT/ORT node best", interleavedCell("coilNOrtVsOrtNodeBest")],
];

/**
 * The issues' bars (13 and 14), counted over the rows they apply to, from the
 * interleaved ratios' medians: [what, models it applies to, models that meet it].
 */
export function bars(rows) {
  const ms = (r) => (r.interleaved?.rates?.eager ? 1e3 / r.interleaved.rates.eager : null);
  const ratioOf = (r, key) => r.interleaved?.ratios?.[key]?.median ?? null;
  const bar = (what, applies, key, atLeast) => {
    const rowsIn = rows.filter((r) => applies(r) && ratioOf(r, key) != null);
    const met = rowsIn.filter((r) => ratioOf(r, key) >= atLeast);
    return { what, key, atLeast, models: rowsIn.length, met: met.length, missed: rowsIn.filter((r) => ratioOf(r, key) < atLeast).map((r) => `${r.name} ${ratioOf(r, key).toFixed(2)}`) };
  };
  const ran = rows.filter((r) => r.eager != null);
  const packed = ran.filter((r) => r.pack?.ok).length;
  return [
    bar("1 interpreter >= 0.97x plain Python, models of >= 0.5 ms (1 caller)", (r) => ms(r) >= 0.5, "coil1VsEager", 0.97),
    bar("1 interpreter >= 0.97x plain Python, models of >= 0.5 ms (2 callers)", (r) => ms(r) >= 0.5, "coil1x2VsEager", 0.97),
    bar("N interpreters >= 0.95x N plain processes, models of >= 0.5 ms", (r) => ms(r) >= 0.5, "coilNVsProcesses", 0.95),
    bar("the paper's claim: 1 interpreter >= 0.95x TorchScript, models of >= 5 ms", (r) => ms(r) >= 5, "coil1VsTorchscript", 0.95),
    bar("(not a bar: where plain eager itself stands) plain eager >= 0.95x TorchScript, models of >= 5 ms", (r) => ms(r) >= 5, "eagerVsTorchscript", 0.95),
    bar("compile: 1 interpreter >= 0.95x plain torch.compile", () => true, "coil1CompileVsCompile", 0.95),
    bar("onnxruntime: N interpreters >= 1.0x onnxruntime-node's best, transformers of <= 1 ms", (r) => r.stack === "venv" && ms(r) <= 1, "coilNOrtVsOrtNodeBest", 1.0),
    { what: "packing >= 98% of the models that ran eagerly", models: ran.length, met: packed, share: ran.length ? packed / ran.length : null },
  ];
}

export function barLines(results) {
  return bars(results.rows).map((b) =>
    b.share !== undefined
      ? `- ${b.what}: ${b.met} of ${b.models} (${b.share === null ? "none ran" : `${(b.share * 100).toFixed(1)}%`})`
      : `- ${b.what}: ${b.met} of ${b.models}${b.missed.length ? ` (below: ${b.missed.join(", ")})` : ""}`,
  );
}

/** [model, step, why] for every step that failed. */
export const failureRows = (rows) => rows.flatMap((r) => r.failures.map(([step, why]) => ({ name: r.name, step, why })));

export const FAILURE_COLUMNS = [
  ["model", (f) => f.name, "l"],
  ["step", (f) => f.step, "l"],
  ["why", (f) => f.why, "l"],
];

/** Counts over the models that ran eagerly: how many packed, equalled eager, scripted, traced, exported. */
export function summary(rows) {
  const ran = rows.filter((r) => r.eager != null);
  const count = (pick) => ran.filter((r) => pick(r)?.ok).length;
  return {
    models: rows.length,
    ranEagerly: ran.length,
    packed: count((r) => r.pack),
    equalToEager: count((r) => r.equal),
    scripted: count((r) => r.script),
    traced: count((r) => r.trace),
    exported: count((r) => r.export),
    exportTried: ran.filter((r) => r.export).length,
  };
}

export function summaryLine(s) {
  return (
    `${s.models} models, ${s.ranEagerly} ran eagerly; of those: packed ${s.packed}, equal to eager ${s.equalToEager}, ` +
    `torch.jit.script ${s.scripted}, torch.jit.trace ${s.traced}, torch.export ${s.exported} of ${s.exportTried} (torch 2.x)`
  );
}

/** The most CPU other processes took during any measurement of the run, in cores. */
export const busiest = (rows) => Math.max(0, ...rows.map((r) => r.otherCpu));

const cell = (text) => String(text ?? "").replaceAll("|", "\\|");
const markdownTable = (columns, rows) =>
  [
    `| ${columns.map(([title]) => title).join(" | ")} |`,
    `| ${columns.map(([, , align]) => (align === "l" ? "---" : "---:")).join(" | ")} |`,
    ...rows.map((r) => `| ${columns.map(([, get]) => cell(get(r))).join(" | ")} |`),
  ].join("\n");

/** When the rows were measured, where the run was done in parts (--resume): each
 * row's ratios still come from one model's run. */
function measuredSpan(rows) {
  const times = rows.map((r) => r.measuredAt).filter(Boolean).sort();
  if (times.length < 2 || times[0].slice(0, 13) === times.at(-1).slice(0, 13)) return "";
  return (
    ` (rows measured from ${times[0]} to ${times.at(-1)}, in parts: each row's ratios come from one run of that model; ` +
    "a row's calls/s are comparable with another's only within one part, as this VM's host runs at different speeds from hour to hour)"
  );
}

/**
 * What docs/zoo.md says of other processes' CPU: a banner where most rows were measured
 * beside other work (their figures are noise), else the rows that were, by name.
 */
export function busyNotice(rows, machine, busyThreshold) {
  const busyRows = rows.filter((r) => r.otherCpu > busyThreshold);
  if (!busyRows.length) return "";
  if (busyRows.length > rows.length / 2) {
    return (
      `> **Measured on a BUSY machine**: other processes took up to ${busiest(rows).toFixed(2)} cores during the measurements ` +
      `(load average ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(", ")} at the start). The rates and ratios below are noise; ` +
      "only the ok/no columns (packing, equality, the compilers) mean something.\n\n"
    );
  }
  const named = busyRows.map((r) => `${r.name} (${r.otherCpu.toFixed(2)})`).join(", ");
  return `> Measured while other processes took more than ${busyThreshold} cores: ${named}. Their rates and ratios are less sure than the rest's.\n\n`;
}

/**
 * The failures, a step that failed the same way on many models once (Debian's Python
 * has no onnxruntime, say), its models listed.
 */
export function groupedFailures(rows, many = 3) {
  const groups = new Map();
  for (const f of failureRows(rows)) {
    const key = `${f.step}\u0000${f.why}`;
    groups.set(key, [...(groups.get(key) ?? []), f]);
  }
  return [...groups.values()].flatMap((same) =>
    same.length < many ? same : [{ ...same[0], name: `${same.map((f) => f.name).join(", ")} (${same.length} models)` }],
  );
}

/** Rows whose rounds took their rates over the whole window (measured before rates were taken between completions). */
function wholeWindowNote(rows) {
  const old = rows.filter((r) => r.interleaved && r.interleaved.rateMethod !== "between completions");
  if (!old.length) return "";
  const newer = rows.filter((r) => r.interleaved && !old.includes(r));
  const which = !newer.length
    ? "Every row here was"
    : old.length > newer.length
      ? `Every row here but ${newer.map((r) => r.name).join(", ")} was`
      : `${old.map((r) => r.name).join(", ")} ${old.length > 1 ? "were" : "was"}`;
  return ` ${which} measured before that: their rounds' rates are over each whole window, which understates N interpreters where a round holds a few slow calls (a window that ends at one interpreter's completion cuts the other's call short).`;
}

/** A stack on Debian's reference BLAS (libblas3) is slow wherever a model is matrix products: said once, beside the stacks. */
function referenceBlasNote(stacks) {
  const slow = Object.entries(stacks).filter(([, s]) => /\/blas\/libblas\.so/.test(s.blas ?? ""));
  if (!slow.length) return "";
  return ` ${slow.map(([name]) => name).join(", ")}: the reference BLAS (Debian's libblas3, where libblas.so.3 points here), so models made mostly of matrix products (ViT, the linear layers of any model) run far slower than on an optimised BLAS -- in every column alike: plain Python, TorchScript and Coil use the same torch.`;
}

/** docs/zoo.md: how it was run, the summary, the chart, the table and the failures. */
export function markdown(results, { busyThreshold }) {
  const { rows, options, machine } = results;
  const warning = busyNotice(rows, machine, busyThreshold);
  const failures = groupedFailures(rows);
  return `# The model zoo

<!-- Written by \`npm run bench:zoo -- --write-docs\` (tools/bench/zoo.mjs); do not edit by hand. -->

${warning}Run of ${results.startedAt}${options.quick ? " (--quick: a subset)" : ""}${measuredSpan(rows)}: ${formatMachine(machine)}; ` +
    `${options.secondsPerMeasurement} s closed loops at batch 1, one torch thread everywhere, N = ${options.interpreters}. ` +
    `Stacks: ${Object.entries(results.stacks).map(([name, s]) => `${name} = \`${s.python}\` (${s.what}${s.blas ? `; BLAS: ${s.blas}` : ""})`).join("; ")}.${referenceBlasNote(results.stacks)}

${summaryLine(results.summary)}.

Columns: \`pack\` zero-config \`coil pack\` (no rules, signature from \`example_inputs()\`); \`== eager\` the
archive loaded in Coil gives eager's outputs (max abs error ≤ 1e-4, shown); \`script\`/\`trace\`/\`export\`
whether \`torch.jit.script\`, \`torch.jit.trace\`, \`torch.export\` (torch 2.x) take the model (each form, here and
below, made from a model instance of its own: tracing can change the instance it traces); calls/s of plain
eager Python, TorchScript (scripted where that worked, else traced), \`torch.compile\` (torch 2.x, inductor, once
compiled), onnxruntime in Python and onnxruntime-node on the model's \`torch.onnx.export\` (\`onnx\`: whether it
exported; one thread), Coil with 1 interpreter (1 caller, then 2 callers: one caller's round trip adds Node's share
of a call to the model's, two overlap them, as a server's requests do; vision models also at
batch 8, the example repeated, beside eager at batch 8), Coil
with N interpreters (2 callers each) and N plain processes; plain eager again with glibc's malloc never
trimming nor mmapping (\`eager no-trim\`: glibc tunables; the interpreters' libc does not give memory back
either, so this is the like-for-like baseline for models with large activations); Coil through its accelerators (\`--accelerate\`,
docs/accelerators.md) with 1 and N interpreters: \`compile\` (beside plain \`torch.compile\`) and \`onnxruntime\`
(beside onnxruntime-node's best over 1 or N intra-op threads and 1, N or 2N callers, its setting shown as
threads×callers), a rate only where every interpreter ran the accelerated form; Pss of the Coil process
holding N interpreters (Node included) vs the N processes together. The ratio columns and the chart
are the medians of the interleaved rounds (the next table) for every model that had them: there,
\`coil1/eager\` and \`coil1/eager no-trim\` are both against eager no-trim on the same CPU. Failures,
with why, under the tables.

${ratioChart(rows) || "(no model has a Coil rate to chart)"}

${markdownTable(COLUMNS, rows)}

## Like for like, from interleaved rounds

A ratio of two rates measured minutes apart says more about this VM's host than about Coil:
plain Python's loop on one model ran at ~1,600 calls/s on one vCPU while the other vCPU ran it
at ~2,600, and the two swap for minutes at a time. So each model's like-for-like ratios come
from ${options.rounds ?? 0} interleaved rounds of ${options.secondsPerMeasurement} s: plain Python (processes kept up, glibc's malloc
never trimming, as the interpreters' libc) and Coil take turns, all loaded and warm, the order
rotated each round; a ratio is taken within a round, and the median is shown with the range
over rounds. Where one thread does the work (1 interpreter, 1 plain process, with or without
\`torch.compile\`), both sides of a round run on the same CPU (the interpreter's thread pinned;
Node's main thread free to run on another), the next round on the next CPU. \`eager/TS\` is plain
eager against TorchScript in the same rounds: where TorchScript beats eager, the paper's claim
asks Coil for more than eager's speed. A round lasts ${options.secondsPerMeasurement} s or 20 calls, whichever is
longer (at most ~30 s of a slow model's calls, at least 3), and its rate is taken between its
first and its last completion.${wholeWindowNote(rows)}

${markdownTable(INTERLEAVED_COLUMNS, rows.filter((r) => r.interleaved))}

The bars of issues 13 and 14, from these medians:

${barLines(results).join("\n")}

## Failures

${failures.length ? markdownTable(FAILURE_COLUMNS, failures) : "None."}
`;
}
