import { scanJsonNumberArray } from "@coil/native/codecs";

/**
 * A strict JSON (RFC 8259) parser for infer request bodies, equal to JSON.parse in
 * what it accepts and returns, except for one thing: an array of numbers (nested or
 * flat) that is the value of a "data" member comes back as a NumericArray, its
 * elements parsed straight into a Float64Array by native code (@coil/native/codecs'
 * scanJsonNumberArray). Tensor data is almost all of a JSON infer request, and
 * JSON.parse would box each element as a heap number in a JS array, only for the
 * codec to copy it into a typed array. Strings are decoded by JSON.parse itself, so
 * escapes and Unicode behave exactly as there; the few other numbers (shapes,
 * parameters) are read in JavaScript.
 */

/** The elements of a numeric "data" array, row-major (nesting flattened). `values`
 * is a view of the parser's scratch memory: valid until the next parseRequestJson.
 * `regular`: the nesting was an N-d array, not ragged ([[1, 2], [3]], [1, [2]]). */
export class NumericArray {
  constructor(
    readonly values: Float64Array,
    readonly regular = true,
  ) {}
}

export class JsonSyntaxError extends SyntaxError {}

/** A "data" array with more elements than the caller allows (see parseRequestJson). */
export class TooManyNumbersError extends RangeError {
  constructor(readonly limit: number) {
    super(`a "data" array holds more than ${limit} elements`);
  }
}

const MAX_DEPTH = 512;

const SPACE = 0x20;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

// Numeric arrays' elements: scratch memory, reused by every document, whose arrays
// follow one another in it; an array too large for what is left gets memory of its own.
const numbers = new Float64Array(16 * 1024);
let numberEnd = 0;

/** Parses `bytes` (UTF-8 JSON); throws JsonSyntaxError saying where it is malformed,
 * and TooManyNumbersError at a "data" array of more than `maxNumbers` elements (a
 * numeric one before anything is allocated for it). */
export function parseRequestJson(bytes: Uint8Array, maxNumbers = Infinity): unknown {
  numberEnd = 0;
  return new Parser(bytes, maxNumbers).document();
}

class Parser {
  readonly #b: Uint8Array;
  readonly #maxNumbers: number;
  #pos = 0;

  constructor(bytes: Uint8Array, maxNumbers: number) {
    this.#b = bytes;
    this.#maxNumbers = maxNumbers;
  }

  document(): unknown {
    const value = this.#value(0, false);
    this.#ws();
    if (this.#pos !== this.#b.length) this.#fail("unexpected data after the JSON value");
    return value;
  }

  #fail(message: string): never {
    throw new JsonSyntaxError(`${message} at position ${this.#pos}`);
  }

  #ws(): void {
    const b = this.#b;
    let p = this.#pos;
    while (p < b.length) {
      const c = b[p]!;
      if (c !== SPACE && c !== LF && c !== CR && c !== TAB) break;
      p++;
    }
    this.#pos = p;
  }

  /** `budget`: elements a "data" array parsed as a plain array may still hold. */
  #value(depth: number, isData: boolean, budget?: { left: number }): unknown {
    if (depth > MAX_DEPTH) this.#fail(`nesting deeper than ${MAX_DEPTH}`);
    this.#ws();
    const c = this.#b[this.#pos];
    switch (c) {
      case OPEN_BRACE:
        return this.#object(depth);
      case OPEN_BRACKET:
        if (isData) {
          const start = this.#pos;
          const numeric = this.#numericArray(depth);
          if (numeric) return numeric;
          this.#pos = start; // not all numbers: parse it as a plain array
        }
        return this.#array(depth, isData ? { left: this.#maxNumbers } : budget);
      case QUOTE:
        return this.#string();
      case 0x74: // t
        return this.#literal("true", true);
      case 0x66: // f
        return this.#literal("false", false);
      case 0x6e: // n
        return this.#literal("null", null);
      case undefined:
        return this.#fail("unexpected end of JSON");
      default:
        if (c === MINUS || (c >= ZERO && c <= NINE)) return this.#number();
        return this.#fail(`unexpected character ${JSON.stringify(String.fromCharCode(c))}`);
    }
  }

  #literal(text: string, value: boolean | null): boolean | null {
    for (let i = 0; i < text.length; i++) {
      if (this.#b[this.#pos + i] !== text.charCodeAt(i)) this.#fail(`invalid literal, expected ${text}`);
    }
    this.#pos += text.length;
    return value;
  }

  #object(depth: number): Record<string, unknown> {
    const object: Record<string, unknown> = {};
    this.#pos++; // {
    this.#ws();
    if (this.#b[this.#pos] === CLOSE_BRACE) {
      this.#pos++;
      return object;
    }
    for (;;) {
      this.#ws();
      if (this.#b[this.#pos] !== QUOTE) this.#fail("expected a string key");
      const key = this.#string();
      this.#ws();
      if (this.#b[this.#pos] !== COLON) this.#fail("expected ':' after a key");
      this.#pos++;
      const value = this.#value(depth + 1, key === "data");
      if (key === "__proto__") {
        Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        object[key] = value;
      }
      this.#ws();
      const c = this.#b[this.#pos];
      if (c === COMMA) {
        this.#pos++;
      } else if (c === CLOSE_BRACE) {
        this.#pos++;
        return object;
      } else {
        this.#fail("expected ',' or '}' in an object");
      }
    }
  }

  #array(depth: number, budget: { left: number } | undefined): unknown[] {
    const array: unknown[] = [];
    this.#pos++; // [
    this.#ws();
    if (this.#b[this.#pos] === CLOSE_BRACKET) {
      this.#pos++;
      return array;
    }
    for (;;) {
      if (budget) {
        this.#ws();
        if (this.#b[this.#pos] !== OPEN_BRACKET && --budget.left < 0) throw new TooManyNumbersError(this.#maxNumbers);
      }
      array.push(this.#value(depth + 1, false, budget));
      this.#ws();
      const c = this.#b[this.#pos];
      if (c === COMMA) {
        this.#pos++;
      } else if (c === CLOSE_BRACKET) {
        this.#pos++;
        return array;
      } else {
        this.#fail("expected ',' or ']' in an array");
      }
    }
  }

  /** An array of numbers and arrays of numbers, flattened (read in native code);
   * undefined at anything else, malformed JSON included: the caller then parses it
   * as a plain array, which reports the error. */
  #numericArray(depth: number): NumericArray | undefined {
    const scan = scanJsonNumberArray(this.#b, this.#pos, MAX_DEPTH - depth, numbers.subarray(numberEnd), this.#maxNumbers);
    if (!scan) return undefined;
    if (!scan.values || scan.count > this.#maxNumbers) throw new TooManyNumbersError(this.#maxNumbers);
    this.#pos = scan.end;
    if (scan.values.buffer === numbers.buffer) numberEnd += scan.count;
    return new NumericArray(scan.values, scan.regular);
  }

  /** A number outside a numeric "data" array (a shape, a parameter): few per
   * request, so checked here and converted by V8. */
  #number(): number {
    const b = this.#b;
    const start = this.#pos;
    let p = start;
    const isDigit = (i: number) => i < b.length && b[i]! >= ZERO && b[i]! <= NINE;
    const digits = () => {
      const from = p;
      while (isDigit(p)) p++;
      return p > from;
    };
    const fail = (why: string): never => {
      this.#pos = p;
      return this.#fail(`invalid number: ${why}`);
    };
    if (b[p] === MINUS) p++;
    if (b[p] === ZERO) p++;
    else if (!isDigit(p)) fail("expected a digit");
    else digits();
    if (b[p] === DOT) {
      p++;
      if (!digits()) fail("digits must follow '.'");
    }
    if (b[p] === 0x65 || b[p] === 0x45) {
      // e, E
      p++;
      if (b[p] === PLUS || b[p] === MINUS) p++;
      if (!digits()) fail("digits must follow the exponent");
    }
    this.#pos = p;
    return Number(this.#latin1(start, p));
  }

  #latin1(start: number, end: number): string {
    const b = this.#b;
    return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString("latin1");
  }

  #string(): string {
    const b = this.#b;
    const start = this.#pos;
    let p = start + 1;
    let plain = true;
    for (;;) {
      const c = b[p];
      if (c === undefined) {
        this.#pos = p;
        this.#fail("unterminated string");
      }
      if (c === QUOTE) break;
      if (c === BACKSLASH) {
        plain = false;
        p += 2;
        continue;
      }
      if (c < 0x20) {
        this.#pos = p;
        this.#fail("control character in a string");
      }
      if (c >= 0x80) plain = false;
      p++;
    }
    this.#pos = p + 1;
    if (plain) return this.#latin1(start + 1, p);
    try {
      return JSON.parse(Buffer.from(b.buffer, b.byteOffset + start, p + 1 - start).toString("utf8")) as string;
    } catch (error) {
      this.#pos = start;
      return this.#fail((error as Error).message);
    }
  }
}
