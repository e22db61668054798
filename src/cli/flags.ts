// Parsers for numeric command-line flags: each refuses anything but a plain number in range with one line naming
// the flag, what it got and what it expects (commander prints it and exits 1). Not config keys (util/config.ts).
import { InvalidArgumentError, Option } from 'commander';
import { INVALID_UTF8_POLICIES } from '../util/utf8.js';
import { availableParallelism } from 'node:os';

/** A decimal number as typed: digits, optional sign, fraction and exponent; no "", hex, "Infinity" or trailing junk. */
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

function parseNumber(name: string, text: string, expected: string): number {
  const v = text.trim();
  if (!NUMBER.test(v)) throw new InvalidArgumentError(`${name}: expected ${expected}, got ${JSON.stringify(text)}`);
  return Number(v);
}

/** An integer flag in [min, max]; `why` explains the upper bound when there is one. */
export function intFlag(name: string, min: number, max = Number.MAX_SAFE_INTEGER, why = ''): (text: string) => number {
  const expected = max === Number.MAX_SAFE_INTEGER ? (min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : `an integer from ${min} to ${max}${why ? ` (${why})` : ''}`;
  return (text) => {
    const n = parseNumber(name, text, expected);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name}: expected ${expected}, got ${JSON.stringify(text)}`);
    return n;
  };
}

/** A real-number flag in a range; `lowOpen` / `highOpen` exclude the ends. */
export function numberFlag(name: string, lo: number, hi: number, lowOpen = false, highOpen = false): (text: string) => number {
  const range = `${lowOpen ? '(' : '['}${lo}, ${hi}${highOpen ? ')' : ']'}`;
  const expected = hi === Infinity ? (lowOpen ? `a number > ${lo}` : `a number ≥ ${lo}`) : `a number in ${range}`;
  return (text) => {
    const x = parseNumber(name, text, expected);
    const ok = Number.isFinite(x) && (lowOpen ? x > lo : x >= lo) && (hi === Infinity || (highOpen ? x < hi : x <= hi));
    if (!ok) throw new InvalidArgumentError(`${name}: expected ${expected}, got ${JSON.stringify(text)}`);
    return x;
  };
}

/** The most worker threads a command accepts: 4 per core (at least 64), since each holds its own tokenizer copy. */
export const MAX_WORKERS = Math.max(64, 4 * availableParallelism());

export const workersFlag = intFlag('--workers', 1, MAX_WORKERS, `each worker holds its own tokenizer copy, so more than 4 per core (or 64) only costs memory`);

/** `--invalid-utf8=error|replace|skip`: the one text policy of every command that reads text files (util/utf8.ts). */
export function invalidUtf8Option(): Option {
  return new Option('--invalid-utf8 <policy>', 'invalid UTF-8 in the input: error (name the file and byte offset), replace (U+FFFD) or skip (drop the line)')
    .choices(INVALID_UTF8_POLICIES)
    .default('error');
}
