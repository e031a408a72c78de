// Each example model, end to end: packed into an archive with packModel, loaded
// eagerly into a pool of 2 interpreters with the CPU backend, run on a fixed input,
// and compared with eager PyTorch in a plain Python process (same file, same factory,
// same seed, same input). Also: each interpreter's weights are views of its own
// mapping of the archive file, and those mappings share their pages (the weights
// are in physical memory once).
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { CpuBackend } from "@coil/backend-cpu";
import { BytesTensor, InterpreterPool, Tensor, type LoadedModel } from "@coil/core";
import { fileMappings, inspectPython } from "@coil/native";
import { packModel } from "@coil/runtime";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";

const run = promisify(execFile);
const HERE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const PYTHON = inject("testPython");

interface Example {
  name: string;
  extern?: string[];
  /** Modules it imports beyond torch: an example whose modules the test Python lacks is skipped. */
  needs?: string[];
  inputs: { name: string; dtype: "float32" | "bytes"; shape: number[] }[];
  outputs: { name: string; dtype: "float32"; shape: number[] }[];
  /** |coil - eager| <= abs + rel * |eager| */
  abs: number;
  rel: number;
}

const ALL_EXAMPLES: Example[] = [
  {
    name: "mlp",
    inputs: [{ name: "x", dtype: "float32", shape: [-1, 64] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, 10] }],
    abs: 1e-5,
    rel: 0,
  },
  {
    name: "resnet18",
    extern: ["torchvision.**"],
    needs: ["torchvision"],
    inputs: [{ name: "image", dtype: "float32", shape: [-1, 3, 224, 224] }],
    outputs: [{ name: "logits", dtype: "float32", shape: [-1, 1000] }],
    // 11M parameters, convolutions summed in a different order with another
    // number of threads (1 per interpreter here, 2 in the reference).
    abs: 1e-5,
    rel: 1e-4,
  },
  {
    name: "transformer",
    inputs: [{ name: "x", dtype: "float32", shape: [-1, -1, 64] }],
    outputs: [{ name: "y", dtype: "float32", shape: [-1, -1, 8] }],
    abs: 1e-5,
    rel: 0,
  },
  {
    name: "text_classifier",
    inputs: [{ name: "text", dtype: "bytes", shape: [-1] }],
    outputs: [{ name: "logits", dtype: "float32", shape: [-1, 4] }],
    abs: 1e-5,
    rel: 0,
  },
];

// Decided by the test Python itself (the venv stack has no torchvision). Left out before
// beforeAll packs them: one missing module there would fail every example.
const IMPORTABLE = (await inspectPython(PYTHON, [...new Set(ALL_EXAMPLES.flatMap((e) => e.needs ?? []))])).modules;
const lacking = (example: Example) => (example.needs ?? []).filter((m) => !IMPORTABLE[m]);
const EXAMPLES = ALL_EXAMPLES.filter((e) => lacking(e).length === 0);

interface Reference {
  inputs: (Tensor<"float32"> | BytesTensor)[];
  output: Float32Array;
  shape: number[];
}

let dir: string;
let pool: InterpreterPool | undefined;
const archives = new Map<string, string>();
const references = new Map<string, Reference>();

/** Eager PyTorch in a plain Python process: the inputs it used and what it got. */
async function reference(example: Example): Promise<Reference> {
  const out = await mkdtemp(join(dir, `${example.name}-eager-`));
  await run(PYTHON, [join(HERE, "test", "eager.py"), join(HERE, `${example.name}.py`), "build", out]);
  const shapes = JSON.parse(await readFile(join(out, "shapes.json"), "utf8")) as { inputs: number[][]; output: number[] };
  const floats = async (file: string) => {
    const bytes = await readFile(join(out, file));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };
  const inputs = await Promise.all(
    shapes.inputs.map(async (shape, i) => {
      if (example.inputs[i]!.dtype === "bytes") {
        const texts = JSON.parse(await readFile(join(out, `input${i}.json`), "utf8")) as string[];
        return new BytesTensor(shape, texts.map((t) => Buffer.from(t, "base64")));
      }
      return new Tensor("float32", shape, await floats(`input${i}.bin`));
    }),
  );
  return { inputs, output: await floats("output.bin"), shape: shapes.output };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "coil-examples-"));
  // The references (plain Python subprocesses) run while the archives are packed.
  const eager = Promise.all(EXAMPLES.map(async (e) => references.set(e.name, await reference(e))));
  for (const example of EXAMPLES) {
    const output = join(dir, `${example.name}.coil`);
    await packModel({
      target: join(HERE, `${example.name}.py:build`),
      output,
      python: PYTHON,
      extern: example.extern ?? [],
      inputs: example.inputs,
      outputs: example.outputs,
    });
    archives.set(example.name, output);
  }
  await eager;
  pool = await InterpreterPool.create({ size: 2, python: PYTHON, backend: new CpuBackend() });
}, 180_000);

afterAll(async () => {
  await pool?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The address ranges where this process maps `file` (from /proc/self/maps). */
async function mappingsOf(file: string): Promise<[bigint, bigint][]> {
  const maps = await readFile("/proc/self/maps", "utf8");
  return maps
    .split("\n")
    .filter((line) => line.endsWith(` ${file}`))
    .map((line) => line.split(" ", 1)[0]!.split("-").map((hex) => BigInt(`0x${hex}`)) as [bigint, bigint]);
}

for (const example of ALL_EXAMPLES.filter((e) => lacking(e).length > 0)) {
  it.skip(`example ${example.name}: needs ${lacking(example).join(", ")}, which the test Python cannot import`, () => {});
}

describe.each(EXAMPLES)("example $name", (example) => {
  let model: LoadedModel;

  it("packs with its signature and loads eagerly into both interpreters", async () => {
    model = await pool!.loadArchive(archives.get(example.name)!, { eager: true });
    expect(model.object.instances).toBe(2);
    expect(model.manifest?.inputs).toEqual(example.inputs);
    expect(model.manifest?.outputs).toEqual(example.outputs);
  });

  it("gives eager PyTorch's output in every interpreter", async () => {
    const ref = references.get(example.name)!;
    // Two calls at once: the scheduler gives each a free interpreter, one each.
    const results = await Promise.all([model.call<Tensor<"float32">>(ref.inputs), model.call<Tensor<"float32">>(ref.inputs)]);
    for (const result of results) {
      expect(result.dtype).toBe("float32");
      expect(result.shape).toEqual(ref.shape);
      let worst = 0;
      for (let i = 0; i < ref.output.length; i++) {
        const excess = Math.abs(result.data[i]! - ref.output[i]!) - (example.abs + example.rel * Math.abs(ref.output[i]!));
        worst = Math.max(worst, excess);
      }
      expect(worst, "largest difference beyond the tolerance").toBe(0);
    }
  });

  it("keeps the weights in the archive's mappings, whose pages the interpreters share", async () => {
    // Every tensor of the state dict (parameters and buffers), by address, in each interpreter.
    const expression = `[t.data_ptr() for t in __import__('coil_bridge')._objects[${model.object.id}].state_dict().values()]`;
    const pointers = await Promise.all(pool!.interpreters.map((i) => i.call<number[]>("eval_expr", [expression])));
    expect(pointers[0]!.length).toBeGreaterThan(0);
    const file = archives.get(example.name)!;
    const ranges = await mappingsOf(file);
    expect(ranges.length).toBe(2); // one private mapping per interpreter: writes stay apart
    const rangeOf = (address: bigint) => ranges.findIndex(([start, end]) => address >= start && address < end);
    for (const [i, list] of pointers.entries()) {
      const owners = new Set(list.map((p) => rangeOf(BigInt(p))));
      expect(owners.has(-1), `interpreter ${i}: every weight inside a mapping of the archive`).toBe(false);
      expect(owners.size, `interpreter ${i}: all its weights in one mapping`).toBe(1);
    }
    expect(rangeOf(BigInt(pointers[0]![0]!))).not.toBe(rangeOf(BigInt(pointers[1]![0]!)));
    // The two mappings are backed by the same page-cache pages: no page was copied
    // (Private_Dirty), and the pages both touched are shared. (A clean page only one
    // interpreter touched shows as Private_Clean: still the page cache's, not a copy.)
    for (const m of fileMappings(file)) {
      expect(m.Private_Dirty).toBe(0);
      expect(m.Shared_Clean).toBeGreaterThan(0);
    }
  });

  it("unloads", async () => {
    await model.unload();
    await expect(model.call(references.get(example.name)!.inputs)).rejects.toMatchObject({ code: "CLOSED" });
  });
});
