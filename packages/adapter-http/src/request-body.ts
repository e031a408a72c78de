/**
 * Reading request bodies under three limits: a size cap per body, a time limit for
 * the whole body to arrive, and a cap on the bytes held by all bodies still arriving.
 * A slow client can otherwise hold its body's memory for as long as it likes: 40 slow
 * 62 MiB uploads took a server from 0.6 to 3.1 GB.
 */
import type { Readable } from "node:stream";

import { HttpError } from "./codec.js";

/** The bytes reserved by the bodies being read, against one cap (per process). */
export class PendingBodies {
  #held = 0;

  constructor(readonly maxBytes: number) {}

  get heldBytes(): number {
    return this.#held;
  }

  /** Reserves `bytes` unless that would pass the cap. */
  tryReserve(bytes: number): boolean {
    if (this.#held + bytes > this.maxBytes) return false;
    this.#held += bytes;
    return true;
  }

  release(bytes: number): void {
    this.#held -= bytes;
  }
}

/** Where the binary tensor data of a body starts (Triton's Inference-Header-Content-Length):
 * the body is placed in memory so that this offset is 8-byte aligned, and tensors are
 * views of it rather than copies (an unaligned 64 MiB tensor took 0.4 s to copy, the
 * event loop blocked meanwhile). */
export interface BodyLayout {
  alignAt?: number;
}

export interface BodyLimits {
  /** Largest body: 413 past it. */
  maxBytes: number;
  /** The whole body must arrive within this: 408 after it. */
  timeoutMs: number;
  pending: PendingBodies;
}

/** Seconds a client refused for lack of body memory is told to wait. */
const RETRY_AFTER_S = 1;

const busy = (pending: PendingBodies) =>
  new HttpError(
    503,
    `the server holds ${pending.heldBytes} bytes of request bodies still arriving, near its cap of ${pending.maxBytes}: retry shortly`,
    { "retry-after": String(RETRY_AFTER_S) },
  );

/**
 * Reads `payload` into one Buffer. A declared Content-Length is reserved whole before
 * a byte is read (so a refusal comes first, not half-way) and read into one buffer;
 * a chunked body reserves as it arrives. The reservation is released when the body
 * is complete or refused: a complete body belongs to its request from then on.
 */
export function readBody(payload: Readable, declaredLength: number | undefined, limits: BodyLimits, layout: BodyLayout = {}): Promise<Buffer> {
  const { maxBytes, timeoutMs, pending } = limits;
  // A body larger than all the body memory there is could never be read: 413, not 503.
  const largest = Math.min(maxBytes, pending.maxBytes);
  if (declaredLength !== undefined && declaredLength > largest) {
    return Promise.reject(new HttpError(413, `the request body is ${declaredLength} bytes, more than the ${largest} this server accepts`));
  }
  if (declaredLength !== undefined && !pending.tryReserve(declaredLength)) return Promise.reject(busy(pending));
  let reserved = declaredLength ?? 0;
  const whole = declaredLength !== undefined ? alignedBuffer(declaredLength, layout.alignAt) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;

  return new Promise<Buffer>((resolve, reject) => {
    const finish = (error: Error | undefined, body?: Buffer) => {
      clearTimeout(timer);
      payload.removeListener("data", onData);
      payload.removeListener("end", onEnd);
      payload.removeListener("error", onError);
      payload.removeListener("close", onClose);
      pending.release(reserved);
      reserved = 0;
      if (error) {
        // Stop reading: the answer closes the connection (the body is not complete).
        payload.pause();
        reject(error);
      } else {
        resolve(body!);
      }
    };
    const onData = (chunk: Buffer) => {
      if (received + chunk.length > (declaredLength ?? largest)) {
        finish(new HttpError(413, `the request body is more than ${declaredLength ?? largest} bytes`));
        return;
      }
      if (whole) {
        chunk.copy(whole, received);
      } else {
        if (!pending.tryReserve(chunk.length)) return finish(busy(pending));
        reserved += chunk.length;
        chunks.push(chunk);
      }
      received += chunk.length;
    };
    const onEnd = () => {
      if (whole && received !== whole.length) {
        finish(new HttpError(400, `the request body has ${received} bytes, not the ${whole.length} of its Content-Length`));
      } else {
        finish(undefined, whole ?? alignedCopy(chunks, received, layout.alignAt));
      }
    };
    const onError = (error: Error) => finish(error);
    const onClose = () => finish(new HttpError(400, "the client closed the connection before its request body was complete"));
    const timer = setTimeout(
      () => finish(new HttpError(408, `the request body did not arrive within ${timeoutMs / 1000} s (received ${received} bytes)`)),
      timeoutMs,
    );
    payload.on("data", onData);
    payload.once("end", onEnd);
    payload.once("error", onError);
    payload.once("close", onClose);
  });
}

const ALIGNMENT = 8;

/** `length` bytes of fresh memory whose byte `alignAt` is 8-byte aligned. */
function alignedBuffer(length: number, alignAt = 0): Buffer {
  // Not Buffer.allocUnsafe: small ones come from a shared pool at any offset.
  const pad = (ALIGNMENT - (alignAt % ALIGNMENT)) % ALIGNMENT;
  return Buffer.from(new ArrayBuffer(length + pad), pad, length);
}

function alignedCopy(chunks: Buffer[], length: number, alignAt: number | undefined): Buffer {
  const body = alignedBuffer(length, alignAt);
  let offset = 0;
  for (const chunk of chunks) {
    chunk.copy(body, offset);
    offset += chunk.length;
  }
  return body;
}
