// The archive benchmark's tables: memory per run and state, load times, the bars.
import { printTable } from "../lib/table.mjs";

export function printReport(results) {
  const { runs, derived } = results;
  console.log(`\nmemory of the Node process (MiB; private = Private_Clean + Private_Dirty), weights ${derived.weightsMiB.toFixed(1)} MiB`);
  const rows = [];
  for (const [run, r] of Object.entries(runs)) {
    if (r.mode === "base") {
      rows.push({ run, state: "Node only", ...r.memoryBeforePool });
      rows.push({ run, state: `${r.size} interpreter(s), torch imported`, ...r.memory });
    } else {
      rows.push({ run, state: `${r.size} interpreter(s), nothing loaded`, ...r.memoryBeforeLoad });
      rows.push({
        run,
        state: r.mode === "copy" ? "loaded (stock torch.package)" : "loaded (validated, mapped, unpickled)",
        ...r.memoryAfterLoad,
      });
      rows.push({ run, state: "after one inference in each", ...r.memoryAfterInference });
    }
  }
  const mib = (field) => [field, (r) => r[field].toFixed(0)];
  const asTable = { indent: "  ", rule: true };
  printTable(
    [
      ["run", (r) => r.run, "l"],
      ["state", (r) => r.state, "l"],
      mib("private"),
      mib("rss"),
      mib("pss"),
      ["anon", (r) => r.anonymous.toFixed(0)],
    ],
    rows,
    asTable,
  );
  console.log(`\nper-interpreter overhead (torch imported): ${derived.perInterpreterOverheadMiB.toFixed(1)} MiB  ((base-4 - base-1) / 3)`);
  if (derived.memory) {
    const m = derived.memory;
    console.log(
      `4 interpreters loaded: ${m.pssLoaded4MiB.toFixed(0)} MiB Pss; weights + nothing loaded: ${m.expectedMiB.toFixed(0)} MiB ` +
        `-> ${m.ratio.toFixed(3)}x (from parts: ${m.expectedFromPartsMiB.toFixed(0)} MiB -> ${m.ratioFromParts.toFixed(3)}x)`,
    );
    console.log(
      `the model added ${m.addedByModelMiB.toFixed(0)} MiB = ${m.weightsCopies.toFixed(2)} x the weights; ` +
        `archive mappings: ${m.archiveMappings.count} (one per interpreter), Rss ${m.archiveMappings.rssMiB.toFixed(
          0,
        )} MiB counted per mapping, ` +
        `Pss ${m.archiveMappings.pssMiB.toFixed(0)} MiB, copied pages (Private_Dirty) ${m.archiveMappings.privateDirtyMiB.toFixed(1)} MiB`,
    );
  }
  if (derived.copy) {
    const c = derived.copy;
    console.log(
      `contrast, stock torch.package in 4 interpreters: ${c.pssLoaded4MiB.toFixed(0)} MiB Pss -> ${c.ratio.toFixed(3)}x; ` +
        `the model added ${c.addedByModelMiB.toFixed(0)} MiB = ${c.weightsCopies.toFixed(2)} x the weights`,
    );
  }

  console.log("\nload times (s)");
  const seconds = (list) => list.map((s) => s.toFixed(3)).join(" ");
  printTable(
    [
      ["run", (r) => r.run, "l"],
      ["interps", (r) => r.size, "l"],
      ["open+verify+map", (r) => (r.openSeconds === null ? "-" : r.openSeconds.toFixed(3))],
      ["materialize (all)", (r) => r.materializeSeconds.toFixed(3)],
      ["per interpreter", (r) => seconds(r.loadSecondsPerInterpreter)],
      ["1st inference each", (r) => seconds(r.firstInferenceSeconds)],
      ["inference", (r) => seconds(r.inferenceSeconds)],
    ],
    Object.entries(runs)
      .filter(([, r]) => r.mode !== "base")
      .map(([run, r]) => ({ run, ...r })),
    asTable,
  );
  console.log(
    "  open+verify+map: loadArchive, once per archive (structure, SHA-256 of every record); each interpreter maps the file as it unpickles;\n" +
      "  per interpreter: when each interpreter finished unpickling (all started together);\n" +
      "  1st inference: touches the weights (page faults on the mapping in the first); inference: a second call",
  );

  console.log("\nbars");
  for (const b of results.bars) console.log(`  ${b.pass ? "PASS" : "FAIL"}  ${b.bar}: ${b.value}`);
}
