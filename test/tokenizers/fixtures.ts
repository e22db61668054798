// Shared fixtures for tokenizer tests: data paths, the tiktoken npm reference, corpora readers, hard cases.
// Not a test file itself (no *.test.ts suffix).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/test/tokenizers/). */
export const repoRoot = resolve(here, '..', '..', '..');
export const dataDir = process.env.LMFORGE_DATA ?? resolve(repoRoot, '..', 'shared', 'data');
export const gpt2Dir = join(dataDir, 'gpt2-tokenizer');
export const shakespearePath = join(dataDir, 'tinyshakespeare', 'input.txt');
export const mmluDir = join(dataDir, 'mmlu');
export const pythonStdlib = '/usr/lib/python3.11';
export const tiktokenEncoders = join(repoRoot, 'node_modules', 'tiktoken', 'encoders');

export const haveData = existsSync(shakespearePath) && existsSync(join(gpt2Dir, 'encoder.json'));

export interface ReferenceEncoding {
  encode(text: string, allowedSpecial?: 'all' | string[], disallowedSpecial?: 'all' | string[]): Uint32Array;
  encode_ordinary(text: string): Uint32Array;
  decode(ids: Uint32Array): Uint8Array;
  free(): void;
}

const require = createRequire(import.meta.url);

/** The tiktoken npm package (Rust compiled to wasm): the reference for ids. */
export function tiktokenEncoding(name: 'gpt2' | 'cl100k_base' | 'o200k_base'): ReferenceEncoding {
  const mod = require('tiktoken') as { get_encoding(n: string): ReferenceEncoding };
  return mod.get_encoding(name);
}

/** Every file under dir whose name ends with ext, sorted. */
export function listFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (name.endsWith(ext)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Every text field (question and four choices) of every MMLU csv file. */
export function mmluTexts(): string[] {
  const out: string[] = [];
  for (const file of listFiles(mmluDir, '.csv')) {
    const rows = parse(readFileSync(file, 'utf8'), { relaxQuotes: true }) as string[][];
    for (const row of rows) out.push(...row.slice(0, 5));
  }
  return out;
}

/** Hand-made hard cases for the split patterns and byte handling. */
export const HARD_CASES: readonly string[] = [
  '',
  ' ',
  'Hello, world!',
  "I'm sure it's what they'll do; we've 'd 're 'S 'LL 'Ve 'ſ 'K ’s",
  "DON'T YOU'LL HE'S",
  'emoji 😀😃🎉 👩‍👩‍👧‍👦 🇫🇷 🏳️‍🌈 ✌🏽',
  '中文测试，日本語のテキスト、한국어 텍스트。',
  'Combining: e\u0301 n\u0303 a\u030a\u0323 Z\u0351\u0352\u0353 क्षि',
  'spaces:' + ' '.repeat(1) + 'a' + ' '.repeat(2) + 'b' + ' '.repeat(7) + 'c' + ' '.repeat(40) + 'd',
  ' '.repeat(300),
  '\t\t  \n\n\n   \r\n \u00a0\u2003\u3000x \u0085y\ufeffz',
  '1234567890 3.14159 1,000,000 0x1F 12345678901234567890123',
  '9'.repeat(500),
  'a'.repeat(1000),
  'control \u0000\u0001\u0007\u001b[31m red \u007f\u0080\u009f',
  'lone surrogates \ud800 x \udc00 \udbff\udfff ok',
  'trailing spaces   ',
  '   leading',
  'line\nbreaks\r\nwindows\r\rold mac\n',
  'code: def f(x):\n    return x**2  # comment\n\n\n\tif a != b: pass',
  'URL https://example.com/path?q=1&r=2#frag /usr/lib/python3.11',
  'Ünïcödé ÀÉÎÕÜ ß ẞ ﬁ ﬀ Ǆ ǅ ǆ ΣΑΣ σας',
  'Arabic مرحبا بالعالم Hebrew שלום Thai สวัสดีครับ Devanagari नमस्ते',
  '<|endoftext|> text <|fim_prefix|> more <|endofprompt|>',
  '\u200b\u200c\u200d\u2060 zero widths',
  '\ud83d\ude00'.repeat(50),
  '!!!??? ... --- *** +++ ///\n\n',
  'mixed123abc456DEF 1a2b3c',
  'x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309\u030a\u030b',
  '𝓗𝓮𝓵𝓵𝓸 𝕎𝕠𝕣𝕝𝕕 ①②③ ½ ² ٣ ๓',
  'CamelCaseWordsHTTPServer getHTTPResponseCode',
];
