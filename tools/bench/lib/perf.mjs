// `perf` attached to this process for the length of a measurement (syscalls.mjs counts,
// thread-profile.mjs samples).
import { spawn } from "node:child_process";

/** Starts `perf <args>` and waits until it has attached; `stop()` interrupts it (perf
 * writes its counts or samples then) and resolves with its exit code and stderr. */
export async function startPerf(args) {
  const perf = spawn("perf", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  perf.stderr.on("data", (d) => (stderr += d));
  const exit = new Promise((resolveExit, reject) => {
    perf.on("error", (error) => reject(new Error(`cannot run perf (${error.message}): install it (Debian: linux-perf)`)));
    perf.on("exit", resolveExit);
  });
  await Promise.race([exit, new Promise((r) => setTimeout(r, 300))]); // attached to every thread, or failed
  return {
    async stop() {
      perf.kill("SIGINT");
      return { code: await exit, stderr };
    },
  };
}
