// The bits_per_byte task type: a model's total negative log-likelihood in bits over held-out files divided by their
// UTF-8 bytes — a figure that does not depend on the tokenizer, unlike loss per token — with xz -9e's bits per byte
// on the same bytes beside it for reference (when xz is installed). The file list is a split.json with a `val` array
// (src/data/stdlib-code.ts writes one) or a text file of paths, one a line. Not the rolling-window scorer (the model
// adapter's loglikelihoodRolling) and not a compressor.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { readText } from './datasets.js';
import type { RunOptions, TaskResult } from './harness.js';
import { bootstrapStderr } from './metrics.js';
import type { LanguageModel } from './model.js';
import type { TaskSpec } from './task-spec.js';
import { UserError } from '../util/errors.js';

/** The files a list names: split.json's `val` array, or one path per line; relative paths from the list's folder. */
export function readFileList(listPath: string): string[] {
  const text = readText(listPath);
  let paths: string[];
  if (listPath.endsWith('.json')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new UserError(`${listPath}: malformed JSON (${(e as Error).message})`);
    }
    const val = (v as { val?: unknown } | null)?.val;
    if (!Array.isArray(val) || !val.every((x) => typeof x === 'string')) throw new UserError(`${listPath}: field val must be an array of file paths (a split.json)`);
    paths = val as string[];
  } else paths = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (paths.length === 0) throw new UserError(`${listPath}: lists no files`);
  return paths.map((p) => {
    const full = isAbsolute(p) ? p : resolve(dirname(listPath), p);
    if (!existsSync(full)) throw new UserError(`${listPath}: listed file ${full} not found`);
    return full;
  });
}

/** Bits per byte of `xz -9e` on bytes, or null when xz is missing. */
export function xzBitsPerByte(bytes: Buffer): number | null {
  const r = spawnSync('xz', ['-9e', '-c', '-T1'], { input: bytes, maxBuffer: bytes.length * 2 + (1 << 20) });
  if (r.error || r.status !== 0) return null;
  return (r.stdout.length * 8) / bytes.length;
}

interface FileScore {
  path: string;
  bytes: number;
  tokens: number;
  /** Σ −log₂ p over the file's tokens. */
  bits: number;
}

/** bits_per_byte = Σ NLL (nats) / ln 2 / Σ UTF-8 bytes; every file is scored on its own (rolling windows). */
export function runBitsPerByte(spec: TaskSpec, model: LanguageModel, options: RunOptions & { dataFile?: string }): TaskResult {
  const started = performance.now();
  const list = options.dataFile ?? join(options.dataDir, spec.data.path);
  const files = readFileList(list).slice(0, options.limit ?? Infinity);
  const texts = files.map((f) => readText(f));
  const scores: FileScore[] = texts.map((text, i) => {
    const [r] = model.loglikelihoodRolling([text]);
    options.onProgress?.(i + 1, files.length);
    return { path: files[i]!, bytes: Buffer.byteLength(text, 'utf8'), tokens: r!.tokens, bits: -r!.logprob / Math.LN2 };
  });
  const bpb = (s: readonly FileScore[]): number => s.reduce((a, f) => a + f.bits, 0) / s.reduce((a, f) => a + f.bytes, 0);
  const metrics: TaskResult['metrics'] = {};
  if (spec.metrics.includes('bits_per_byte')) metrics.bits_per_byte = { value: bpb(scores), stderr: bootstrapStderr(scores, bpb) };
  const totalBytes = scores.reduce((a, f) => a + f.bytes, 0);
  // xz sees exactly the bytes the model scored (the files as decoded text, concatenated in list order); per file too,
  // since the model never sees one file from another (each file costs xz its ~60-byte container as well).
  const joined = Buffer.from(texts.join(''), 'utf8');
  const xz = spec.metrics.includes('xz_bits_per_byte') ? xzBitsPerByte(joined) : null;
  let xzPerFile: number | null = null;
  if (xz !== null) {
    metrics.xz_bits_per_byte = { value: xz, stderr: null };
    let bits = 0;
    for (const t of texts) bits += xzBitsPerByte(Buffer.from(t, 'utf8'))! * Buffer.byteLength(t, 'utf8');
    xzPerFile = bits / totalBytes;
  }
  const tokens = scores.reduce((a, f) => a + f.tokens, 0);
  return {
    task: spec.task, version: spec.version, nShot: 0, n: files.length, metrics,
    details: {
      files: list, bytes: totalBytes, tokens, nll_bits: scores.reduce((a, f) => a + f.bits, 0), bits_per_token: scores.reduce((a, f) => a + f.bits, 0) / tokens,
      xz: xz === null ? (spec.metrics.includes('xz_bits_per_byte') ? 'xz not found' : 'not asked') : { command: 'xz -9e', concatenated_bits_per_byte: xz, per_file_bits_per_byte: xzPerFile },
    },
    ...(options.logSamples ? { samples: scores.map((s, i) => ({ doc_id: i, ...s, bits_per_byte: s.bits / s.bytes })) } : {}),
    seconds: (performance.now() - started) / 1000,
  };
}
