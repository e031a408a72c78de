// What a crossing benchmark calls: an object that spins in Python and returns what a
// small encoder would (the crossing without a model's memory traffic), one of
// overhead/loop.py's models, or a zoo model packed with zero config. `prepareTarget`
// runs once in the parent (packing, example inputs) and returns a plain description
// a child process can take; `openTarget` loads it in a pool.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { Tensor } from "@coil/core";
import { packModel } from "@coil/runtime";

import { fail } from "./args.mjs";
import { runJsonChild } from "./child.mjs";
import { progress } from "./log.mjs";
import { BENCH_DIR, REPO_ROOT } from "./paths.mjs";
import { deterministicTensor } from "./tensor.mjs";
import { MODELS, STACKS } from "../zoo/models.mjs";

const RUN_MODEL = join(REPO_ROOT, "packages", "runtime", "test", "fixtures", "zero-config", "run_model.py");
const LOOP = join(BENCH_DIR, "overhead", "loop.py");
const LOOP_MODELS = ["mlp", "deep"];
const SPINNER = `import time, torch
class Spinner:
    """Spins work_us in Python, then returns what a small encoder would."""
    def __init__(self, work_us):
        self.work_s = work_us / 1e6
        self.result = {"last_hidden_state": torch.zeros(1, 16, 32), "pooler_output": torch.zeros(1, 32)}
    def __call__(self, *inputs):
        end = time.perf_counter() + self.work_s
        while time.perf_counter() < end:
            pass
        return self.result
`;

/** The flags that choose a target, for parseFlags. */
export const TARGET_FLAGS = {
  "work-us": { type: "number", default: 500, help: "the spinning object's time a call, µs (without --model or --loop-model)" },
  model: { type: "string", default: undefined, defaultHelp: "the spinning object", help: "a zoo model to call instead (tools/bench/zoo/models.mjs)" },
  "loop-model": { type: "string", default: undefined, help: `one of overhead/loop.py's models (${LOOP_MODELS.join(", ")}) to call instead` },
  python: { type: "path", default: join(REPO_ROOT, ".venv-torch2", "bin", "python"), defaultHelp: ".venv-torch2/bin/python", help: "the Python Coil embeds (without --model)" },
};

/** Packs or writes what `flags` names into `scratch`; returns its description. */
export async function prepareTarget(flags, scratch) {
  if (flags.model && flags.loopModel) fail("--model and --loop-model: one or the other");
  if (flags.loopModel) {
    if (!LOOP_MODELS.includes(flags.loopModel)) fail(`unknown --loop-model ${flags.loopModel}; known: ${LOOP_MODELS.join(", ")}`);
    return { name: `overhead/loop.py's ${flags.loopModel}`, python: flags.python, loopModel: flags.loopModel };
  }
  if (flags.model) {
    const model = MODELS.find((m) => m.name === flags.model);
    if (!model) fail(`unknown model ${flags.model}; known: ${MODELS.map((m) => m.name).join(", ")}`);
    const target = { name: model.name, python: STACKS[model.stack].python, archive: join(scratch, `${model.name}.pt`), inputs: join(scratch, `${model.name}.inputs.json`) };
    progress(`packing ${model.name}`);
    await packModel({ target: `${model.file}:${model.factory}`, output: target.archive, example: model.example, python: target.python });
    const reference = await runJsonChild(target.python, [RUN_MODEL, model.file, model.factory, model.example, target.archive], { cwd: REPO_ROOT, timeoutMs: 600_000 });
    writeFileSync(target.inputs, JSON.stringify(reference.inputs));
    return target;
  }
  const file = join(scratch, "spinner.py");
  writeFileSync(file, SPINNER);
  return { name: `an object spinning ${flags.workUs} µs`, python: flags.python, file, workUs: flags.workUs };
}

/** Loads `target` in `pool`, in every interpreter: { object, inputs } to call it with. */
export async function openTarget(pool, target) {
  if (target.archive) {
    const inputs = JSON.parse(readFileSync(target.inputs, "utf8")).map((t) => Tensor.from(t.dtype, t.shape, t.data));
    return { object: await pool.loadArchive(target.archive, { eager: true }), inputs };
  }
  const object = target.loopModel
    ? pool.replicate({ file: LOOP, factory: "Bench", args: [target.loopModel, "base", 1] })
    : pool.replicate({ file: target.file, factory: "Spinner", args: [target.workUs] });
  await object.materialize();
  const inputs = target.loopModel
    ? [deterministicTensor([8, 64], 1)] // as overhead.mjs passes
    : [Tensor.zeros("int64", [1, 16]), Tensor.zeros("int64", [1, 16])];
  return { object, inputs };
}
