// The scaling benchmark's tables, with the legends that say what each column means.
import { formatMachine } from "../lib/machine.mjs";
import { formatInt, formatMs, formatPercent, formatRate, formatRatio } from "../lib/format.mjs";
import { DISTURBED, formatOtherCpu } from "../lib/quiet.mjs";
import { printTable } from "../lib/table.mjs";

/** The heading: the machine, the budget, the settings, how busy the machine is. */
export function printMachine(m, options) {
  console.log("Coil scaling benchmark");
  console.log(`  machine: ${formatMachine(m)}`);
  console.log(
    `  interpreter budget ${m.interpreterBudget} (GLIBC_TUNABLES=${m.glibcTunables ?? "unset"}); ` +
      `N = ${options.maxInterpreters}; ${options.durationS} s per configuration after ${options.warmupS} s warm-up${
        options.quick ? " (--quick)" : ""
      }`,
  );
  console.log(
    `  private memory before any interpreter: ${formatInt(m.privateMbBeforeInterpreters)} MB; other processes use ` +
      `${m.otherCpuAtStart.toFixed(2)} cores now (load average ${m.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")})`,
  );
  if (m.otherCpuAtStart > DISTURBED) {
    console.log("  WARNING: the machine is busy; other processes distort the numbers (see the 'other CPU' column)");
  }
}

/** One workload's table; `backend`: what the CPU backend reported (Python, torch). */
export function printWorkload(name, workload, rows, backend, options) {
  console.log(`\n== ${name}: ${workload.what}`);
  if (backend) console.log(`   Python ${backend.python}, torch ${backend.torch}, mkldnn ${backend.mkldnn}`);
  printTable(
    [
      ["configuration", (r) => r.label, "l"],
      ["callers", (r) => r.concurrency],
      ["torch thr", (r) => r.torchThreads],
      ["calls/s", (r) => formatRate(r.callsPerSecond)],
      ["p50 ms", (r) => formatMs(r.p50Ms)],
      ["p99 ms", (r) => formatMs(r.p99Ms)],
      ["private MB", (r) => (r.privateMb === undefined ? "" : formatInt(r.privateMb) + (r.memoryOf ? "*" : ""))],
      ["interp", (r) => (r.memoryOf ? "-" : r.interpretersInProcess)],
      ["scaling", (r) => formatRatio(r.scaling)],
      ["vs plain", (r) => formatRatio(r.vsPlain)],
      ["main busy", (r) => formatPercent(r.mainThreadBusy)],
      ["interp busy", (r) => formatPercent(r.interpreterBusy)],
      ["other CPU", (r) => formatOtherCpu(r.otherCpu)],
    ],
    rows,
  );
  console.log(
    `   callers: calls outstanding (coil: Node callers, ${options.callersPerInterpreter} per interpreter; the others: Python threads). ` +
      "torch thr: torch intra-op threads.\n" +
      "   scaling: vs the 1-worker row of the same kind; vs plain: vs plain Python, 1 thread.\n" +
      "   private MB: the Node process (Private_Clean+Private_Dirty) holding 'interp' interpreters in all; * the Python process.\n" +
      "   '1 interpreter, T threads': T Python threads of one Coil interpreter sharing its GIL (the bridge baseline; calls start in Python).\n" +
      "   'on libpython.so': plain Python linked to the shared libpython Coil loads (Debian's python3 links it statically).\n" +
      "   main busy / interp busy: CPU share of Node's main thread / of each interpreter's own thread (mean) during the window.\n" +
      `   other CPU: cores other processes used meanwhile (! above ${DISTURBED}: that row is disturbed).`,
  );
}

export function printNoop(rows) {
  console.log("\n== no-op round trip, Node -> interpreter -> Node");
  printTable(
    [
      ["configuration", (r) => r.label, "l"],
      ["calls/s", (r) => formatRate(r.callsPerSecond)],
      ["p50 us", (r) => formatInt(r.p50Us)],
      ["p99 us", (r) => formatInt(r.p99Us)],
      ["private MB", (r) => formatInt(r.privateMb)],
      ["main busy", (r) => formatPercent(r.mainThreadBusy)],
      ["interp busy", (r) => formatPercent(r.interpreterBusy)],
      ["other CPU", (r) => formatOtherCpu(r.otherCpu)],
    ],
    rows,
  );
  console.log(
    "   pool.run: the pool's API (tracks each call so close() can drain or cancel it); interpreter.call: the\n" +
      "   interpreter the pool's scheduler picks, called directly. p50 at 1 outstanding: one unloaded round trip.",
  );
}

export function printStartup(s) {
  console.log("\n== 15 interpreters importing torch in one process (child process)");
  if (s.skipped) console.log(`   skipped: ${s.reason}`);
  else if (!s.started) console.log(`   did NOT start: ${s.error}`);
  else {
    console.log(
      `   started: ${s.interpreters} interpreters (torch ${s.torch}) in ${s.seconds.toFixed(1)} s; private memory ` +
        `${formatInt(s.privateMb)} MB (${formatInt(s.privateMbBefore)} MB before, ~${formatInt(s.perInterpreterMb)} MB per interpreter); ` +
        `a torch op ran in each: ${s.allRan}`,
    );
  }
}
