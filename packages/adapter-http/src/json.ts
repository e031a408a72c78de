/**
 * A strict JSON (RFC 8259) parser for infer request bodies, equal to JSON.parse in
 * what it accepts and returns, except for one thing: an array of numbers (nested or
 * flat) that is the value of a "data" member comes back as a NumericArray, its
 * elements parsed straight into a Float64Array. Tensor data is almost all of a JSON
 * infer request, and JSON.parse would box each element as a heap number in a JS
 * array, only for the codec to copy it into a typed array: this halves the main
 * thread's decoding time (tools/bench/http.mjs). Strings are decoded by JSON.parse
 * itself, so escapes and Unicode behave exactly as there.
 */

/** The elements of a numeric "data" array, row-major (nesting flattened). `values`
 * is a view of the parser's scratch memory: valid until the next parseRequestJson. */
export class NumericArray {
  constructor(readonly values: Float64Array) {}
}

export class JsonSyntaxError extends SyntaxError {}

const MAX_DEPTH = 512;
// Exact powers of ten: m * 10^k and m / 10^k round once, correctly, when m < 2^53.
const POW10 = Array.from({ length: 23 }, (_, k) => 10 ** k);

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

// The two scanners below run once per tensor element: they compare with literal
// character codes, which V8 folds, where the named constants above are loaded from
// the module's context each time (measured: 1.7x slower).

// scanNumber's value: a typed-array slot, since a double in a plain variable would be
// boxed (allocated) on every store, once per tensor element.
const scanned = new Float64Array(1);

/**
 * Scans the JSON number at b[p]. Returns the position after it, with its value in
 * scanned[0] (NaN when it needs V8's conversion: more than 15 significant digits
 * or an exponent past 10^±22), or -(position of the error) - 1 when malformed.
 */
function scanNumber(b: Uint8Array, p: number): number {
  const length = b.length;
  let negative = false;
  let c = p < length ? b[p]! : 0;
  if (c === 0x2d) {
    negative = true;
    c = ++p < length ? b[p]! : 0;
  }
  let mantissa = 0;
  let digits = 0; // significant digits seen (beyond 15 they are not in mantissa)
  let exponent = 0;
  if (c === 0x30) {
    c = ++p < length ? b[p]! : 0;
  } else if (c > 0x30 && c <= 0x39) {
    do {
      if (digits < 15) mantissa = mantissa * 10 + (c - 0x30);
      else exponent++;
      digits++;
      c = ++p < length ? b[p]! : 0;
    } while (c >= 0x30 && c <= 0x39);
  } else {
    return -p - 1;
  }
  if (c === 0x2e) {
    c = ++p < length ? b[p]! : 0;
    if (c < 0x30 || c > 0x39) return -p - 1;
    do {
      if (digits < 15) {
        mantissa = mantissa * 10 + (c - 0x30);
        exponent--;
        if (mantissa !== 0) digits++;
      } else {
        digits++;
      }
      c = ++p < length ? b[p]! : 0;
    } while (c >= 0x30 && c <= 0x39);
  }
  if (c === 0x65 || c === 0x45) {
    // e, E
    c = ++p < length ? b[p]! : 0;
    let expNegative = false;
    if (c === 0x2b || c === 0x2d) {
      expNegative = c === 0x2d;
      c = ++p < length ? b[p]! : 0;
    }
    if (c < 0x30 || c > 0x39) return -p - 1;
    let explicit = 0;
    do {
      if (explicit < 100_000) explicit = explicit * 10 + (c - 0x30);
      c = ++p < length ? b[p]! : 0;
    } while (c >= 0x30 && c <= 0x39);
    exponent += expNegative ? -explicit : explicit;
  }
  let value = NaN;
  if (digits <= 15) {
    if (mantissa === 0) value = 0;
    else if (exponent >= 0 && exponent <= 22) value = mantissa * POW10[exponent]!;
    else if (exponent < 0 && exponent >= -22) value = mantissa / POW10[-exponent]!;
  }
  scanned[0] = negative ? -value : value;
  return p;
}

// scanNumericArray's elements: scratch memory that grows as needed. Each document's
// numeric arrays follow one another in it (numberStart.. numberEnd for the last one).
let numbers = new Float64Array(4096);
let numberStart = 0;
let numberEnd = 0;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * Scans the array at b[p] ('[') if it holds only numbers and arrays of them, into
 * numbers[numberStart, numberEnd), after the previous array's. Returns the position after it, or -1 at anything else
 * (or nesting past maxLevels).
 */
function scanNumericArray(b: Uint8Array, p: number, maxLevels: number): number {
  const length = b.length;
  numberStart = numberEnd;
  let count = numberStart;
  let level = 1;
  let afterOpen = true;
  let c = 0;
  p++; // past '['
  for (;;) {
    // An element: a number, a nested array, or (right after '[') the end of an empty one.
    while (p < length && isSpace((c = b[p]!))) p++;
    if (p >= length) return -1;
    if (c === 0x5d && afterOpen) {
      p++;
      level--;
    } else if (c === 0x5b) {
      if (++level > maxLevels) return -1;
      p++;
      afterOpen = true;
      continue;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const end = scanNumber(b, p);
      if (end < 0) return -1;
      let value = scanned[0]!;
      if (value !== value) value = Number(Buffer.from(b.buffer, b.byteOffset + p, end - p).toString("latin1")); // NaN: slow path
      if (count === numbers.length) {
        const grown = new Float64Array(numbers.length * 2);
        grown.set(numbers);
        numbers = grown;
      }
      numbers[count++] = value;
      p = end;
    } else {
      return -1;
    }
    // After an element: ',' for the next one, or ']'s closing levels.
    for (;;) {
      if (level === 0) {
        numberEnd = count;
        return p;
      }
      while (p < length && isSpace((c = b[p]!))) p++;
      if (p >= length) return -1;
      if (c === 0x2c) {
        p++;
        afterOpen = false;
        break;
      }
      if (c !== 0x5d) return -1;
      p++;
      level--;
    }
  }
}

/** Parses `bytes` (UTF-8 JSON); throws JsonSyntaxError saying where it is malformed. */
export function parseRequestJson(bytes: Uint8Array): unknown {
  numberEnd = 0;
  return new Parser(bytes).document();
}

class Parser {
  readonly #b: Uint8Array;
  #pos = 0;

  constructor(bytes: Uint8Array) {
    this.#b = bytes;
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

  #value(depth: number, isData: boolean): unknown {
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
        return this.#array(depth);
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

  #array(depth: number): unknown[] {
    const array: unknown[] = [];
    this.#pos++; // [
    this.#ws();
    if (this.#b[this.#pos] === CLOSE_BRACKET) {
      this.#pos++;
      return array;
    }
    for (;;) {
      array.push(this.#value(depth + 1, false));
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

  /** An array of numbers and arrays of numbers, flattened; undefined at anything
   * else, malformed JSON included: the caller then parses it as a plain array,
   * which reports the error. */
  #numericArray(depth: number): NumericArray | undefined {
    const end = scanNumericArray(this.#b, this.#pos, MAX_DEPTH - depth);
    if (end < 0) return undefined;
    this.#pos = end;
    return new NumericArray(numbers.subarray(numberStart, numberEnd));
  }

  #number(): number {
    const end = scanNumber(this.#b, this.#pos);
    if (end < 0) {
      this.#pos = -end - 1;
      this.#fail("invalid number");
    }
    const value = scanned[0]!;
    const start = this.#pos;
    this.#pos = end;
    return Number.isNaN(value) ? Number(this.#latin1(start, end)) : value;
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
