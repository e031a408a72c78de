// The benchmark programs keep working: each runs here on a tiny subset, briefly, and
// what it writes is checked for shape and sense -- never for speed (the numbers of a
// few hundred milliseconds on a shared machine mean nothing). The full runs and their
// figures: tools/bench/README.md, docs/engine.md, docs/zoo.md.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { describe, expect, it } from "vitest";

import { ROOT } from "../harness/paths.js";
import { runOk } from "../harness/process.js";
import { venvReadiness } from "../harness/venv.js";

const venv = venvReadiness();
// syscalls.mjs counts with perf's syscall tracepoints (Debian's linux-perf, and the permission to read them).
const perfTracepoints = spawnSync("perf", ["stat", "-e", "raw_syscalls:sys_enter", "true"], { stdio: "ignore" }).status === 0;
// thread-profile.mjs samples one thread with `perf record`.
const perfSampling = spawnSync("perf", ["record", "-o", "/dev/null", "-q", "true"], { stdio: "ignore" }).status === 0;
if (!perfSampling) console.log("benchmarks: thread-profile.mjs is SKIPPED: `perf record true` fails here (install linux-perf; sampling needs perf_event_paranoid <= 2 or root)");
if (!perfTracepoints) console.log("benchmarks: syscalls.mjs is SKIPPED: `perf stat -e raw_syscalls:sys_enter true` fails here (install linux-perf; tracepoints need root or perf_event_paranoid <= -1)");
// instructions.mjs counts under Valgrind's callgrind, with marks built from its callgrind.h.
const callgrind = spawnSync("valgrind", ["--version"], { stdio: "ignore" }).status === 0 && existsSync("/usr/include/valgrind/callgrind.h");
if (!callgrind) console.log("benchmarks: instructions.mjs is SKIPPED: valgrind or its callgrind.h is missing (install Debian's valgrind)");
if (!venv.ready) console.log(`benchmarks: the venv rows are SKIPPED: the venv is not ready (make it: bash tools/python-envs.sh):\n${venv.reason}`);
const out = mkdtempSync(join(tmpdir(), "coil-bench-smoke-"));
const bench = (program: string, args: string[]) => runOk(process.execPath, [join(ROOT, "tools/bench", program), ...args], { cwd: ROOT });
const written = (name: string) => JSON.parse(readFileSync(join(out, name), "utf8"));

describe("the model zoo (npm run bench:zoo)", () => {
  it("packs, checks and measures one torchvision model on Debian's torch", async () => {
    await bench("zoo.mjs", ["--models", "mobilenet_v3_small", "--seconds", "0.3", "--rounds", "2", "--start-delay", "3", "--interpreters", "2", "--out", join(out, "zoo-debian.json")]);
    const [row] = written("zoo-debian.json").rows;
    // The like-for-like ratios, from 2 interleaved rounds each: a ratio per round, the median between their range.
    expect(row.interleaved.rounds).toBe(2);
    for (const key of ["coil1VsEager", "coil1x2VsEager", "coil1VsTorchscript", "coilNVsProcesses"]) {
      const { median, min, max } = row.interleaved.ratios[key];
      expect(min, key).toBeGreaterThan(0);
      expect(median, key).toBeGreaterThanOrEqual(min);
      expect(median, key).toBeLessThanOrEqual(max);
    }
    expect(row).toMatchObject({ name: "mobilenet_v3_small", stack: "debian", pack: { ok: true }, equal: { ok: true }, script: { ok: true }, trace: { ok: true } });
    // A vision model: at batch 8 too.
    for (const rate of ["eager", "eagerNoTrim", "torchscript", "coil1", "coil1x2", "coilN", "processes", "eager8", "coil1b8"]) expect(row[rate], rate).toBeGreaterThan(0);
    // Debian's Python has no onnxruntime: the export is tried, the rate says why it has none.
    expect(row.onnx).toEqual({ ok: true, via: "torchscript" });
    expect(row.failures).toContainEqual(["onnxruntime", expect.stringContaining("no onnxruntime")]);
  }, 600_000);

  it.skipIf(!venv.ready)("adds torch.compile and onnxruntime on the venv's torch 2.x", async () => {
    await bench("zoo.mjs", ["--models", "bert", "--seconds", "0.3", "--rounds", "1", "--start-delay", "3", "--interpreters", "2", "--out", join(out, "zoo-venv.json")]);
    const [row] = written("zoo-venv.json").rows;
    // The accelerators' like-for-like ratios too: torch.compile's against plain torch.compile, and onnxruntime's
    // against onnxruntime-node where that peer is installed (tools/bench/peers/install.sh; a fresh machine lacks it).
    const keys = ["coil1VsEager", "coilNVsProcesses", "coil1CompileVsCompile", ...(row.onnxruntimeNode ? ["coilNOrtVsOrtNodeBest"] : [])];
    for (const key of keys) expect(row.interleaved.ratios[key]?.median, key).toBeGreaterThan(0);
    expect(row).toMatchObject({ name: "bert", stack: "venv", pack: { ok: true }, equal: { ok: true }, onnx: { ok: true } });
    for (const rate of ["eager", "compile", "onnxruntime", "coil1", "coilN", "processes"]) expect(row[rate], rate).toBeGreaterThan(0);
    expect(row.onnxruntimeMaxError).toBeLessThanOrEqual(1e-4);
  }, 900_000);
});

describe("the zoo's interleaved rounds", () => {
  it("rotates the members each round and takes each ratio within a round", async () => {
    const { interleavedRounds } = await import("../../tools/bench/zoo/interleaved.mjs");
    const order: string[] = [];
    // Rates that drift from round to round (a host slowing down): the ratio within a round stays 0.5.
    const member = (name: string, scale: number) => async (round: number) => {
      order.push(`${round}:${name}`);
      return { callsPerSecond: scale * (100 - 30 * round) };
    };
    let closed = false;
    const result = await interleavedRounds(
      [
        { name: "one", open: async () => ({ eager: member("eager", 2), coil1: member("coil1", 1) }), close: async () => void (closed = true) },
        { name: "absent", open: async () => "not loaded: why" },
      ],
      3,
    );
    expect(order).toEqual(["0:eager", "0:coil1", "1:coil1", "1:eager", "2:eager", "2:coil1"]);
    expect(closed).toBe(true);
    expect(result.ratios.coil1VsEager).toEqual({ median: 0.5, min: 0.5, max: 0.5, rounds: [0.5, 0.5, 0.5] });
    expect(result.rates.eager).toEqual({ median: 140, rounds: [200, 140, 80] });
    expect(result.skipped).toEqual({ absent: "not loaded: why" });
    // Ratios whose members did not run are left out.
    expect(result.ratios.coilNVsProcesses).toBeUndefined();
  });

  it("waits for 20 calls a round, but for no more than ~30 s of a slow model's, and never fewer than 3", async () => {
    const { roundMinCalls } = await import("../../tools/bench/zoo/interleaved.mjs");
    expect(roundMinCalls(2000)).toBe(20); // a tiny transformer
    expect(roundMinCalls(0.5)).toBe(15); // 2 s a call: 30 s
    expect(roundMinCalls(0.3)).toBe(9);
    expect(roundMinCalls(0.1)).toBe(3); // Debian's ViT-B/16 here: ~10 s a call
    expect(roundMinCalls(0.05)).toBe(3);
    expect(roundMinCalls(undefined)).toBe(3); // no rate known
    // N interpreters serving one loop: one more than a multiple of N.
    expect(roundMinCalls(2000, 2)).toBe(21);
    expect(roundMinCalls(0.1, 2)).toBe(3);
    expect(roundMinCalls(0.4, 2)).toBe(13);
    expect(roundMinCalls(0.4, 4)).toBe(13);
    expect(roundMinCalls(0.5, 4)).toBe(17);
  });

  it("takes a round's rate between its first and last completion: two interpreters in step, few slow calls", async () => {
    const { completionRate } = await import("../../tools/bench/lib/closed-loop.mjs");
    // Two servers in step, 10 s a call, the window opened 0.5 s into their first calls:
    // completions at 9.5, 9.5 and 19.5 s. Over the window, 3 / 19.5 s (0.154/s, 0.77x the
    // true 0.2/s); between completions, 2 / 10 s.
    expect(completionRate({ calls: 3, firstMs: 9500, lastMs: 19500, windowMs: 19500 })).toBeCloseTo(0.2, 10);
    // Out of step (completions at 2, 7, 12 s): the same.
    expect(completionRate({ calls: 3, firstMs: 2000, lastMs: 12000, windowMs: 12000 })).toBeCloseTo(0.2, 10);
    // One server, 20 calls of 50 ms: 19 intervals of 50 ms.
    expect(completionRate({ calls: 20, firstMs: 50, lastMs: 1000, windowMs: 1000 })).toBeCloseTo(20, 10);
    // Fewer than two completions, or all at one moment: over the window.
    expect(completionRate({ calls: 1, firstMs: 900, lastMs: 900, windowMs: 1000 })).toBe(1);
    expect(completionRate({ calls: 0, firstMs: Infinity, lastMs: -Infinity, windowMs: 1000 })).toBe(0);
  });

  it("counts as other CPU only what is not the measurement: N plain processes do not count their siblings", async () => {
    const { modelRow } = await import("../../tools/bench/zoo/report.mjs");
    const { MODELS } = await import("../../tools/bench/zoo/models.mjs");
    const model = MODELS.find((m: { name: string }) => m.name === "resnet18");
    const measured = (processesOther: number, coilOther = 0.01) => ({
      python: { ok: true, eager: { ok: true, value: { callsPerSecond: 30, otherCpu: 0.01 } } },
      coil1: { ok: true, equal: true, maxError: 0, callsPerSecond: 28, otherCpu: coilOther },
      processes: { ok: true, processes: 2, callsPerSecond: 60, otherCpu: processesOther },
    });
    // Each of the 2 processes sees its sibling busy: a quiet machine.
    expect(modelRow(model, measured(1.02)).otherCpu).toBeCloseTo(0.02);
    // Something else busy while they ran, or while Coil ran.
    expect(modelRow(model, measured(1.6)).otherCpu).toBeCloseTo(0.6);
    expect(modelRow(model, measured(1.0, 0.9)).otherCpu).toBeCloseTo(0.9);
  });

  it("makes a row's like-for-like ratios again from the rounds' rates, so a ratio added later shows for models measured before", async () => {
    const { modelRow } = await import("../../tools/bench/zoo/report.mjs");
    const { MODELS } = await import("../../tools/bench/zoo/models.mjs");
    const model = MODELS.find((m: { name: string }) => m.name === "resnet18");
    const rates = { eager: [30, 20, 40], torchscript: [30, 25, 40], coil1: [27, 20, 36] };
    const interleaved = {
      ok: true,
      rounds: 3,
      rates: Object.fromEntries(Object.entries(rates).map(([name, rounds]) => [name, { median: [...rounds].sort()[1], rounds }])),
      ratios: {}, // as measured before eager/TS existed
      skipped: {},
    };
    const row = modelRow(model, { python: { ok: true }, interleaved });
    expect(row.interleaved.ratios.eagerVsTorchscript).toEqual({ median: 1, min: 0.8, max: 1 });
    expect(row.interleaved.ratios.coil1VsEager.median).toBeCloseTo(0.9);
    expect(row.coil1VsTorchscript).toBeCloseTo(0.9);
  });

  it("names the rows measured beside other work, and says BUSY only when most were", async () => {
    const { busyNotice } = await import("../../tools/bench/zoo/report.mjs");
    const machine = { loadAverageAtStart: [1.5, 1.2, 1.0] };
    const rows = (...cpu: number[]) => cpu.map((otherCpu, i) => ({ name: `m${i}`, otherCpu }));
    expect(busyNotice(rows(0.01, 0.02, 0.03), machine, 0.2)).toBe("");
    const some = busyNotice(rows(0.01, 0.56, 0.03), machine, 0.2);
    expect(some).toContain("m1 (0.56)");
    expect(some).not.toContain("BUSY");
    expect(busyNotice(rows(0.5, 0.56, 0.03), machine, 0.2)).toContain("Measured on a BUSY machine");
  });

  it("lists a failure shared by many models once, with its models", async () => {
    const { groupedFailures } = await import("../../tools/bench/zoo/report.mjs");
    const noOrt = ["onnxruntime", "RuntimeError: this Python has no onnxruntime"];
    const rows = [
      { name: "a", failures: [noOrt] },
      { name: "b", failures: [noOrt, ["script", "cannot script"]] },
      { name: "c", failures: [noOrt] },
      { name: "d", failures: [["script", "cannot script"]] },
    ];
    expect(groupedFailures(rows)).toEqual([
      { name: "a, b, c (3 models)", step: "onnxruntime", why: noOrt[1] },
      { name: "b", step: "script", why: "cannot script" },
      { name: "d", step: "script", why: "cannot script" },
    ]);
  });
});

describe.skipIf(!venv.ready)("the overhead experiment and the peers", () => {
  it("measures plain Python, the loop inside an interpreter and Node's calls, with and without the hand-off", async () => {
    const args = ["--models", "mlp", "--variants", "base,no-hand-off", "--callers", "1,2", "--rounds", "1", "--duration", "0.3", "--warmup", "0.1"];
    await bench("overhead.mjs", [...args, "--out", join(out, "overhead.json")]);
    const { rows, handOff } = written("overhead.json");
    expect(handOff).toEqual({ batchWhileQueued: 2, batchWindowUs: 200, spinUs: 50, maxSpinUs: 1000, callerSpinUs: 1000, contentionCheckMs: 20 });
    const methods = rows.map((r: { variant: string; method: string }) => `${r.variant} ${r.method.trim()}`);
    for (const variant of ["base", "no-hand-off"]) {
      for (const method of ["plain", "coil loop", "coil node ×1", "empty call ×1", "coil node ×2", "empty call ×2"]) expect(methods).toContain(`${variant} ${method}`);
    }
    for (const r of rows) expect(r.callsPerSecond, `${r.variant} ${r.method}`).toBeGreaterThan(0);
  }, 600_000);

  it("times each phase of a call in one pinned interpreter, fed by Node and by its own loop", async () => {
    await bench("call-timeline.mjs", ["--model", "bert", "--calls", "60", "--rounds", "1", "--out", join(out, "call-timeline.json")]);
    type Phase = { median: number; mean: number; p10: number } | null;
    type Way = { wallUsPerCall: number; phases: Record<string, Phase>; counters: { minflt: number }; forwardVsLoop: { median: number } };
    const { ways }: { ways: Record<string, Way> } = written("call-timeline.json");
    const pinnedAway = "2 callers, rest pinned away";
    expect(Object.keys(ways)).toEqual(["in-interpreter loop", "1 caller", "2 callers", ...(ways[pinnedAway] ? [pinnedAway] : [])]);
    for (const [way, w] of Object.entries(ways)) {
      for (const phase of ["call_object -> forward", "forward", "forward -> return", "between calls"]) expect(w.phases[phase]?.median, `${way}: ${phase}`).toBeGreaterThan(0);
      // Calls run one after another on the interpreter: no phase outlasts the whole.
      expect(w.wallUsPerCall, way).toBeGreaterThanOrEqual(w.phases.forward!.mean);
      expect(w.counters.minflt, way).toBeGreaterThanOrEqual(0);
    }
    expect(ways["in-interpreter loop"].phases["Node -> call_object"]).toBeNull();
    expect(ways["in-interpreter loop"].forwardVsLoop.median).toBe(1);
    // One caller: every phase timed, on one clock (a phase across the two threads is never negative),
    // and together they are each call's submit-to-resolve, which the run's wall time bounds.
    const one = ways["1 caller"].phases;
    for (const phase of ["Node -> call_object", "return -> Node"]) expect(one[phase]!.p10, phase).toBeGreaterThan(0);
    const serial = ["Node -> call_object", "call_object -> forward", "forward", "forward -> return", "return -> Node"].reduce((sum, p) => sum + one[p]!.mean, 0);
    expect(serial).toBeLessThanOrEqual(ways["1 caller"].wallUsPerCall * 1.001);
  }, 600_000);

  it("times the tensor crossing both ways, the engine's DLPack and the bridge's Python", async () => {
    await bench("crossing.mjs", ["--python", "/usr/bin/python3", "--blocks", "2", "--calls", "20", "--out", join(out, "crossing.json")]);
    const { rows }: { rows: { shape: string; way: string; runUs: number; roundTripUs: number; blocks: unknown[] }[] } = written("crossing.json");
    expect(rows.map((r) => r.way)).toEqual(["native", "python", "native", "python", "native", "python"]);
    expect(new Set(rows.map((r) => r.shape)).size).toBe(3);
    for (const r of rows) {
      expect(r.blocks, `${r.shape} ${r.way}`).toHaveLength(2);
      expect(r.runUs, `${r.shape} ${r.way}`).toBeGreaterThan(0);
      // The interpreter's part is inside the round trip.
      expect(r.roundTripUs, `${r.shape} ${r.way}`).toBeGreaterThan(r.runUs);
    }
  }, 600_000);

  it.skipIf(!perfTracepoints)("counts each thread's system calls a call, builds side by side", async () => {
    const build = join(ROOT, "packages/native/build/Release/coil_native.node");
    const args = ["--python", "/usr/bin/python3", "--interpreters", "1", "--callers", "2", "--work-us", "200", "--seconds", "0.5", "--rounds", "1"];
    await bench("syscalls.mjs", [...args, "--addons", `${build},${build}`, "--out", join(out, "syscalls.json")]);
    type Run = { addon: string; calls: number; mainCpuUs: number; mainSyscalls: number; mainFutex: number; interpreterSyscalls: number; interpreterFutex: number };
    const { runs, builds }: { runs: Run[]; builds: Run[] } = written("syscalls.json");
    // One child process per build and round; the medians per build (here the same build twice).
    expect(runs.map((r) => r.addon)).toEqual([build, build]);
    expect(builds).toHaveLength(1);
    for (const r of runs) {
      expect(r.calls).toBeGreaterThan(0);
      expect(r.mainCpuUs).toBeGreaterThan(0);
      // Node's thread waits for results in the kernel (epoll) at least now and then; futex calls are among all calls.
      expect(r.mainSyscalls).toBeGreaterThan(0);
      expect(r.mainFutex).toBeLessThanOrEqual(r.mainSyscalls);
      expect(r.interpreterFutex).toBeLessThanOrEqual(r.interpreterSyscalls);
    }
  }, 600_000);

  it.skipIf(!perfSampling)("profiles Node's thread and an interpreter's, the samples summed by library and function", async () => {
    const args = ["--python", "/usr/bin/python3", "--interpreters", "1", "--callers", "2", "--work-us", "200", "--seconds", "0.5"];
    type Share = { name: string; share: number };
    type Profile = { calls: number; threadCpuUsPerCall: number; samples: number; libraries: Share[]; functions: Share[]; under: { name: string; share: number; callees: Share[] }[] };
    for (const thread of ["main", "interpreter"]) {
      await bench("thread-profile.mjs", [...args, "--thread", thread, "--under", "FromValue", "--out", join(out, `thread-${thread}.json`)]);
      const profile: Profile = written(`thread-${thread}.json`);
      expect(profile.calls, thread).toBeGreaterThan(0);
      expect(profile.threadCpuUsPerCall, thread).toBeGreaterThan(0);
      expect(profile.samples, thread).toBeGreaterThan(0);
      const libraries = profile.libraries.map((l) => l.name);
      // Node's thread runs node and the addon (converting results: FromValue); the interpreter's runs CPython.
      if (thread === "main") {
        expect(libraries).toContain("node");
        expect(profile.under[0]!.share).toBeGreaterThan(0);
      } else {
        expect(libraries.some((l) => l.startsWith("libpython"))).toBe(true);
        expect(profile.under[0]!.share).toBe(0);
      }
      for (const { share } of [...profile.libraries, ...profile.functions]) expect(share).toBeLessThanOrEqual(1);
    }
  }, 600_000);

  it.skipIf(!callgrind)("counts the instructions of a call under callgrind: plain Python, the interpreter's thread, Node's", async () => {
    await bench("instructions.mjs", ["--models", "mlp", "--python", "/usr/bin/python3", "--calls", "20", "--warmup", "5", "--out", join(out, "instructions.json")]);
    type Split = { interpreter: number; main: number; other: number };
    const [mlp]: { name: string; plain: number; coilLoop: number; coilNode: Split; emptyCall: Split }[] = written("instructions.json").models;
    expect(mlp!.name).toBe("mlp");
    // The same loop over the same model counts about the same in plain CPython and inside
    // an interpreter (a namespace adds no work a call); a call from Node adds the crossing.
    expect(mlp!.plain).toBeGreaterThan(10_000);
    expect(mlp!.coilLoop / mlp!.plain).toBeGreaterThan(0.8);
    expect(mlp!.coilLoop / mlp!.plain).toBeLessThan(1.25);
    expect(mlp!.coilNode.interpreter).toBeGreaterThan(mlp!.emptyCall.interpreter);
    expect(mlp!.emptyCall.interpreter).toBeGreaterThan(0);
    // Node's thread runs each call's JavaScript and the addon, with or without a model.
    expect(mlp!.coilNode.main).toBeGreaterThan(1_000);
    expect(mlp!.emptyCall.main).toBeGreaterThan(1_000);
  }, 1_200_000);

  it("compares Coil with node-calls-python, or says how to install it", async () => {
    await bench("peers.mjs", ["--models", "mlp", "--seconds", "0.3", "--warmup", "0.1", "--out", join(out, "peers.json")]);
    const [row] = written("peers.json").rows;
    expect(row.model).toBe("mlp");
    for (const rate of ["plain", "coil1", "coil1x4", "coilN"]) expect(row[rate], rate).toBeGreaterThan(0);
    if (row.errors.ncp) expect(row.errors.ncp).toContain("tools/bench/peers/install.sh");
    else expect(row.ncpBest).toBeGreaterThan(0);
  }, 600_000);
});
