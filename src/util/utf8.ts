// lmforge's one policy for text that is not valid UTF-8 (and strings with lone surrogates): by default an error
// naming the file and the byte offset; `replace` puts U+FFFD in place of each bad sequence; `skip` drops the
// line (or record) that holds one. A scanner for the offset and a streaming decoder that applies the policy.
// Not a general text codec: only UTF-8 in, JavaScript strings out.
import { isUtf8 } from 'node:buffer';
import { UserError } from './errors.js';

export const INVALID_UTF8_POLICIES = ['error', 'replace', 'skip'] as const;
export type InvalidUtf8Policy = (typeof INVALID_UTF8_POLICIES)[number];

/** The hint every refusal ends with, so the user learns the way out. */
export const UTF8_HINT = 'fix the file, or pass --invalid-utf8=replace (U+FFFD) or --invalid-utf8=skip (drop the line)';

/**
 * Offset (from 0) of the first byte of the first ill-formed UTF-8 sequence in bytes[start, end), or -1 if there is
 * none. With `final` false, a sequence cut off by `end` is not an error (more bytes follow).
 */
export function invalidUtf8Offset(b: Uint8Array, start = 0, end = b.length, final = true): number {
  let i = start;
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      if (c === 0xed) hi = 0x9f; // no UTF-16 surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      if (c === 0xf4) hi = 0x8f; // nothing past U+10FFFF
    }
    else return i;
    for (let k = 1; k <= need; k++) {
      if (i + k >= end) return final ? i : -1;
      const x = b[i + k]!;
      if (k === 1 ? x < lo || x > hi : x < 0x80 || x > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/** The index of the first lone surrogate in `s`, or -1. */
export function loneSurrogateIndex(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return i;
  }
  return -1;
}

/** `s` with each lone surrogate replaced by U+FFFD. */
export function toWellFormed(s: string): string {
  if (loneSurrogateIndex(s) < 0) return s;
  return Buffer.from(s, 'utf8').toString('utf8'); // the UTF-8 encoder writes U+FFFD for lone surrogates
}

const lenient = new TextDecoder('utf-8');

/**
 * Decodes a stream of UTF-8 bytes under a policy, line by line where it matters (skip drops whole lines), and keeps
 * the byte offset so errors point at the exact byte. Feed chunks with push(); end() flushes the rest.
 */
export class Utf8LineDecoder {
  /** Bytes before `pending`, i.e. the file offset of pending[0]. */
  private consumed = 0;
  private pending: Buffer = Buffer.alloc(0);
  /** Lines dropped (skip) and sequences replaced (replace): for a notice at the end. */
  skippedLines = 0;
  replaced = 0;
  firstBadOffset = -1;

  constructor(readonly file: string, readonly policy: InvalidUtf8Policy) {}

  push(chunk: Uint8Array): string {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    // Decode up to the last newline (the rest may be a cut line or a cut character); a 16 MiB line without a
    // newline is decoded up to its last whole character so memory stays bounded.
    let cut = this.pending.lastIndexOf(10) + 1;
    if (cut === 0 && this.pending.length > 1 << 24) {
      cut = this.pending.length;
      while (cut > this.pending.length - 4 && cut > 0 && (this.pending[cut - 1]! & 0xc0) === 0x80) cut--;
      if (cut > 0 && this.pending[cut - 1]! >= 0xc0) cut--;
    }
    return this.take(cut);
  }

  end(): string {
    return this.take(this.pending.length);
  }

  private take(n: number): string {
    if (n === 0) return '';
    const part = this.pending.subarray(0, n);
    const base = this.consumed;
    this.pending = this.pending.subarray(n);
    this.consumed += n;
    if (isUtf8(part)) return part.toString('utf8');
    return this.repair(part, base);
  }

  private repair(part: Buffer, base: number): string {
    const at = invalidUtf8Offset(part);
    if (this.firstBadOffset < 0) this.firstBadOffset = base + at;
    if (this.policy === 'error') throw new UserError(`${this.file}: invalid UTF-8 at byte offset ${base + at}; ${UTF8_HINT}`);
    if (this.policy === 'replace') {
      for (let i = invalidUtf8Offset(part); i >= 0; i = invalidUtf8Offset(part, i + 1)) this.replaced++;
      return lenient.decode(part);
    }
    const out: string[] = [];
    let start = 0;
    while (start < part.length) {
      let nl = part.indexOf(10, start);
      nl = nl < 0 ? part.length : nl + 1;
      const line = part.subarray(start, nl);
      if (isUtf8(line)) out.push(line.toString('utf8'));
      else this.skippedLines++;
      start = nl;
    }
    return out.join('');
  }

  /** One line for stderr when anything was replaced or skipped, else ''. */
  notice(): string {
    if (this.replaced > 0) return `${this.file}: replaced ${this.replaced} invalid UTF-8 sequence(s) with U+FFFD (first at byte offset ${this.firstBadOffset})`;
    if (this.skippedLines > 0) return `${this.file}: skipped ${this.skippedLines} line(s) with invalid UTF-8 (first at byte offset ${this.firstBadOffset})`;
    return '';
  }
}

/** Decodes a whole file's bytes under the policy (see Utf8LineDecoder). */
export function decodeUtf8(bytes: Uint8Array, file: string, policy: InvalidUtf8Policy = 'error'): { text: string; notice: string } {
  const d = new Utf8LineDecoder(file, policy);
  const text = d.push(bytes) + d.end();
  return { text, notice: d.notice() };
}
