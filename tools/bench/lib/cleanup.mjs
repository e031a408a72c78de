// Work to undo however the benchmark ends: normally, on an error, or on Ctrl-C.

const tasks = [];
let installed = false;

/** Runs `task` (synchronous: the process is exiting) once when the process exits,
 * including on SIGINT/SIGTERM, which then exit with status 130. */
export function onExit(task) {
  tasks.push(task);
  if (installed) return;
  installed = true;
  process.once("exit", () => {
    for (const t of tasks.splice(0).reverse()) {
      try {
        t();
      } catch {
        // Exiting anyway; the rest must still run.
      }
    }
  });
  for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => process.exit(130));
}
