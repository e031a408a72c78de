// The machine a benchmark ran on, recorded with its results and printed above its tables.
import { availableParallelism, cpus, loadavg, release, totalmem } from "node:os";

import { interpreterBudget, startupTunables } from "@coil/native";

export function describeMachine() {
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: availableParallelism(),
    memoryGb: totalmem() / 2 ** 30,
    kernel: release(),
    glibc: process.report?.getReport?.()?.header?.glibcVersionRuntime ?? "unknown",
    node: process.version,
    loadAverageAtStart: loadavg(),
    interpreterBudget: interpreterBudget(),
    glibcTunables: startupTunables() ?? null,
  };
}

/** "<cpu>, 2 cores, 7.8 GiB, Linux <kernel>, glibc 2.41, Node v20.20.2" */
export function formatMachine(m) {
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGb.toFixed(1)} GiB, Linux ${m.kernel}, glibc ${m.glibc}, Node ${m.node}`;
}
