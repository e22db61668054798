// The long-context code corpus of issue 12: the Python standard library's own source on this machine
// (/usr/lib/python3.N/**/*.py, site-/dist-packages excluded, symlinks skipped), in sorted order, split by file with a
// fixed rule: a file is validation when FNV-1a-32(its path relative to /usr/lib/python3.N/) mod 100 < 5 (about 5% of
// the files; the same file lands on the same side whatever the Python version), else training. A byte-level BPE is
// trained on the training files only, and both splits are tokenized (one <|endoftext|> after each file) into
// train.bin / val.bin with meta.json and split.json (the rule and both file lists). Not the trainer.
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { countPreTokens, trainBpe } from '../tokenizers/bpe-trainer.js';
import { saveTokenizer } from '../tokenizers/format.js';
import { tokenizeFiles, TOKENIZER_COPY } from '../tokenizers/tokenize-files.js';
import { UserError } from '../util/errors.js';

export const STDLIB_SPLIT_RULE = 'val ⇔ FNV-1a-32(path relative to /usr/lib/python3.N/, UTF-8) mod 100 < 5';

/** FNV-1a, 32 bits, of a string's UTF-8 bytes. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(s, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h >>> 0;
}

export function isValFile(rel: string): boolean {
  return fnv1a32(rel) % 100 < 5;
}

/**
 * The non-empty .py files below root as [{ path, rel }] (rel relative to root), in a walk that sorts each directory
 * by name; symbolic links, __pycache__ and the directory names in `skip` are not followed.
 */
export function pythonFiles(root: string, skip: readonly string[] = []): { path: string; rel: string }[] {
  const out: { path: string; rel: string }[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isSymbolicLink()) continue;
      if (st.isDirectory()) {
        if (name !== '__pycache__' && !skip.includes(name)) walk(path);
      } else if (name.endsWith('.py') && st.size > 0) {
        out.push({ path, rel: relative(root, path) });
      }
    }
  };
  walk(root);
  return out;
}

/** The standard library's .py files under root (e.g. /usr/lib): [{ path, rel }] sorted by rel, then by version. */
export function stdlibFiles(root = '/usr/lib'): { path: string; rel: string }[] {
  const dirs = existsSync(root) ? readdirSync(root).filter((d) => /^python3\.\d+$/.test(d)).sort() : [];
  if (dirs.length === 0) throw new UserError(`stdlib-code: no ${root}/python3.N directory on this machine (the Python standard library's source)`);
  const out = dirs.flatMap((d) => pythonFiles(join(root, d), ['site-packages', 'dist-packages']));
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : a.path < b.path ? -1 : 1));
}

export interface StdlibCodeResult {
  trainFiles: number;
  valFiles: number;
  trainTokens: number;
  valTokens: number;
  vocabSize: number;
}

/** Builds outDir/{train.bin, val.bin, meta.json, split.json, tokenizer} from the standard library's source. */
export async function prepareStdlibCode(outDir: string, vocabSize = 4096, log: (line: string) => void = () => undefined): Promise<StdlibCodeResult> {
  const files = stdlibFiles();
  const train = files.filter((f) => !isValFile(f.rel));
  const val = files.filter((f) => isValFile(f.rel));
  const bytes = (fs: typeof files): number => fs.reduce((n, f) => n + statSync(f.path).size, 0);
  log(`stdlib-code: ${files.length} files, ${train.length} train (${(bytes(train) / 1e6).toFixed(1)} MB), ${val.length} val (${(bytes(val) / 1e6).toFixed(2)} MB); ${STDLIB_SPLIT_RULE}`);
  mkdirSync(outDir, { recursive: true });
  const tokPath = join(outDir, 'bpe.lmf.json');
  const counts = new Map<string, number>();
  for (const f of train) countPreTokens(readFileSync(f.path, 'utf8'), counts);
  const tok = trainBpe(counts, { vocabSize, minFrequency: 2, specialTokens: ['<|endoftext|>'] });
  saveTokenizer(tok, tokPath);
  log(`stdlib-code: BPE of ${tok.vocabSize} tokens trained on the train files → ${tokPath}`);
  // Validation first into a side directory (its train.bin becomes our val.bin), then the training files.
  const side = join(outDir, '.val-tmp');
  rmSync(side, { recursive: true, force: true });
  const v = await tokenizeFiles({ tokenizerPath: tokPath, inputs: val.map((f) => f.path), outDir: side, valFraction: 0, invalidUtf8: 'replace' });
  const t = await tokenizeFiles({ tokenizerPath: tokPath, inputs: train.map((f) => f.path), outDir, valFraction: 0, invalidUtf8: 'replace' });
  renameSync(join(side, 'train.bin'), join(outDir, 'val.bin'));
  rmSync(side, { recursive: true, force: true });
  const meta = {
    vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: TOKENIZER_COPY }, source: '/usr/lib/python3.N/**/*.py (standard library)',
    split: STDLIB_SPLIT_RULE, train_files: train.length, val_files: val.length, train_tokens: t.train.tokens, val_tokens: v.train.tokens,
  };
  writeFileSync(join(outDir, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
  writeFileSync(join(outDir, 'split.json'), JSON.stringify({ rule: STDLIB_SPLIT_RULE, train: train.map((f) => f.path), val: val.map((f) => f.path) }, null, 1) + '\n');
  log(`stdlib-code: ${t.train.tokens} train + ${v.train.tokens} val tokens → ${outDir}`);
  return { trainFiles: train.length, valFiles: val.length, trainTokens: t.train.tokens, valTokens: v.train.tokens, vocabSize: tok.vocabSize };
}
