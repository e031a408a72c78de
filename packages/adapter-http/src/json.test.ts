import { describe, expect, it } from "vitest";

import { NumericArray, parseRequestJson, TooManyNumbersError } from "./json.js";

/** JSON.parse's result with our NumericArrays in place: what parseRequestJson must give. */
function expected(text: string): unknown {
  const flatten = (v: unknown): unknown[] => (Array.isArray(v) ? v.flatMap(flatten) : [v]);
  const numericOnly = (v: unknown): boolean => (Array.isArray(v) ? v.every(numericOnly) : typeof v === "number");
  // Regular: every array of one depth has one length, every number one depth.
  const regular = (v: unknown[]): boolean => {
    const lengths = new Map<number, number>();
    const leafDepths = new Set<number>();
    const visit = (x: unknown, depth: number): void => {
      if (!Array.isArray(x)) return void leafDepths.add(depth);
      if ((lengths.get(depth) ?? x.length) !== x.length) leafDepths.add(-1);
      lengths.set(depth, x.length);
      for (const y of x) visit(y, depth + 1);
    };
    visit(v, 0);
    const leaf = [...leafDepths][0];
    return leafDepths.size <= 1 && leaf !== -1 && [...lengths.keys()].every((d) => leaf === undefined || d < leaf);
  };
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        const value = k === "data" && Array.isArray(x) && numericOnly(x) ? new NumericArray(Float64Array.from(flatten(x) as number[]), regular(x)) : walk(x);
        Object.defineProperty(out, k, { value, writable: true, enumerable: true, configurable: true });
      }
      return out;
    }
    return v;
  };
  return walk(JSON.parse(text));
}

const parse = (text: string) => parseRequestJson(Buffer.from(text, "utf8"));

/** A seeded generator (mulberry32), so failures reproduce. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function numberText(r: () => number): string {
  const x = (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
  switch (Math.floor(r() * 7)) {
    case 0:
      return String(x);
    case 1:
      return x.toExponential(Math.floor(r() * 20));
    case 2:
      return x.toFixed(Math.floor(r() * 12));
    case 3:
      return String(Math.floor(r() * 2 ** 53) * (r() < 0.5 ? -1 : 1));
    case 4: {
      // Long digit strings: past 15 significant digits, past 2^53, odd exponents.
      let s = r() < 0.3 ? "-" : "";
      s += String(1 + Math.floor(r() * 9));
      for (let n = Math.floor(r() * 25); n > 0; n--) s += String(Math.floor(r() * 10));
      if (r() < 0.5) s += "." + String(Math.floor(r() * 1e9)).padStart(9, "0");
      if (r() < 0.5) s += (r() < 0.5 ? "e" : "E") + (r() < 0.5 ? "-" : "+") + String(Math.floor(r() * 330));
      return s;
    }
    case 5:
      return ["0", "-0", "0.0", "0e0", "1e400", "-1e400", "1e-400", "5e-324", "2.2250738585072014e-308", "0.1", "9007199254740993"][Math.floor(r() * 11)]!;
    default:
      return String(Math.fround(x));
  }
}

function valueText(r: () => number, depth: number): string {
  const pick = r();
  if (depth > 3 || pick < 0.35) return numberText(r);
  if (pick < 0.5) return JSON.stringify(["a", "é", "\u0000x", '"q"', "\\", "🐍", ""][Math.floor(r() * 7)]);
  if (pick < 0.6) return ["true", "false", "null"][Math.floor(r() * 3)]!;
  if (pick < 0.8) {
    const items = Array.from({ length: Math.floor(r() * 5) }, () => valueText(r, depth + 1));
    return `[${items.join(r() < 0.5 ? "," : " , ")}]`;
  }
  const keys = ["data", "shape", "name", "data", "__proto__", "x"];
  const members = Array.from({ length: Math.floor(r() * 4) }, () => `${JSON.stringify(keys[Math.floor(r() * keys.length)])}:${valueText(r, depth + 1)}`);
  return `{${members.join(",")}}`;
}

function numericData(r: () => number, depth: number): string {
  if (depth === 0 || r() < 0.3) return numberText(r);
  return `[${Array.from({ length: Math.floor(r() * 4) }, () => numericData(r, depth - 1)).join(",")}]`;
}

describe("parseRequestJson", () => {
  it("parses an infer request, with numeric data as a Float64Array", () => {
    const text = '{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1.5,-2],[3e2, 0.1]]}],"id":"r"}';
    const parsed = parse(text) as { inputs: { data: NumericArray; shape: number[] }[] };
    expect(parsed.inputs[0]!.data).toBeInstanceOf(NumericArray);
    expect(Array.from(parsed.inputs[0]!.data.values)).toEqual([1.5, -2, 300, 0.1]);
    expect(parsed.inputs[0]!.shape).toEqual([2, 2]); // only "data" is special
    expect(parsed).toEqual(expected(text));
  });

  it("leaves data that is not all numbers as JSON.parse does", () => {
    for (const text of ['{"data":["a","b"]}', '{"data":[1,true]}', '{"data":[[1],["x"]]}', '{"data":[1,null]}', '{"data":3}', '{"data":[]}', '{"data":[[],[[]]]}']) {
      expect(parse(text), text).toEqual(expected(text));
    }
  });

  it("parses every number exactly as JSON.parse does (seeded fuzz)", () => {
    const r = random(7);
    for (let i = 0; i < 20_000; i++) {
      const text = numberText(r);
      const ours = parse(`{"data":[${text}]}`) as { data: NumericArray };
      expect(Object.is(ours.data.values[0], JSON.parse(text)), text).toBe(true);
      expect(Object.is(parse(text), JSON.parse(text)), text).toBe(true);
    }
  });

  it("gives JSON.parse's structure for random documents (seeded fuzz)", () => {
    const r = random(11);
    for (let i = 0; i < 5_000; i++) {
      const text = r() < 0.5 ? valueText(r, 0) : `{"data":${numericData(r, 4)},"name":"n"}`;
      expect(parse(text), text).toEqual(expected(text));
    }
  });

  it("refuses whatever JSON.parse refuses, mutations of valid documents included (seeded fuzz)", () => {
    const malformed = ["", " ", "{", "}", "[1,]", "[,1]", '{"a":1,}', '{"a" 1}', "{a:1}", "01", "1.", ".5", "+1", "-", "1e", "1e+", "NaN", "Infinity", "0x10", "tru", "nul", '"abc', '"\\x"', '"a\nb"', "[1 2]", '{"data":[1,]}', '{"data":[1 2]}', '{"data":[[1],]}', '{"data":[1]]}', '{"data":[-]}', "1 2", '{"data":[1e]}', "\ufeff{}"];
    for (const text of malformed) {
      expect(() => JSON.parse(text), text).toThrow();
      expect(() => parse(text), text).toThrow(SyntaxError);
    }
    const r = random(13);
    const alphabet = '{}[],:"\\ 0123456789-+.eEtrufalsn';
    for (let i = 0; i < 20_000; i++) {
      const chars = [...valueText(r, 0)];
      const at = Math.floor(r() * (chars.length + 1));
      const kind = r();
      if (kind < 0.4) chars.splice(at, 1);
      else if (kind < 0.8) chars.splice(at, 0, alphabet[Math.floor(r() * alphabet.length)]!);
      else chars[at] = alphabet[Math.floor(r() * alphabet.length)]!;
      const text = chars.join("");
      let want: unknown;
      try {
        want = expected(text);
      } catch {
        expect(() => parse(text), text).toThrow(SyntaxError);
        continue;
      }
      expect(parse(text), text).toEqual(want);
    }
  });

  it("keeps a __proto__ key as an own property, as JSON.parse does", () => {
    const parsed = parse('{"__proto__":{"polluted":true},"data":[1]}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.hasOwn(parsed, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("refuses a numeric array longer than allowed before allocating for it", () => {
    const big = Buffer.from(`{"data":[${"1,".repeat(99_999)}1]}`); // past the 16k scratch
    expect(() => parseRequestJson(big, 50_000)).toThrow(TooManyNumbersError);
    expect((parseRequestJson(big, 100_000) as { data: NumericArray }).data.values.length).toBe(100_000);
    expect(() => parseRequestJson(Buffer.from('{"data":[1,2,3]}'), 2)).toThrow(/holds more than 2 elements/);
    // Not all numbers: parsed in JavaScript, under the same limit.
    expect(() => parseRequestJson(Buffer.from('{"data":[[1,2],["a","b"]]}'), 3)).toThrow(TooManyNumbersError);
    expect(parseRequestJson(Buffer.from('{"data":[[1,2],["a","b"]]}'), 4)).toEqual({ data: [[1, 2], ["a", "b"]] });
  });

  it("refuses nesting past its depth limit instead of overflowing the stack", () => {
    expect(() => parse("[".repeat(100_000))).toThrow(/nesting deeper than/);
    expect(() => parse(`{"data":${"[".repeat(100_000)}`)).toThrow(/nesting deeper than/);
  });
});
