// Token shards for the code model (src/data/code-tokens.ts) on a tiny corpus laid out as scripts/code-corpus.sh and
// `lmforge curate` leave it: the BPE uses the code pattern, train.bin holds the curated files and val.bin the held-out
// ones (each followed by <|endoftext|>), split.json names the held-out paths, bad input names the file and line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decontaminate, filterHeldout, prepareCodeTokens, readHeldoutFiles } from '../../src/data/code-tokens.js';
import { JsonlGzWriter } from '../../src/data/writers.js';
import { loadTokenizer } from '../../src/tokenizers/format.js';
import { TokenFileReader } from '../../src/tokenizers/token-file.js';
import type { BpeTokenizer } from '../../src/tokenizers/bpe.js';

/** A letters-only name per number (dedup's normal form drops digits). */
const name = (i: number): string => Array.from({ length: 4 }, (_, k) => String.fromCharCode(97 + (Math.floor(i / 26 ** k) % 26))).join('');
const py = (i: number): string => `def ${name(i)}(x):\n    if x > ${i}:\n        return x * ${i}\n    return None\n`;
const script = (i: number): string => `import os\n\nfor ${name(i)} in os.listdir("."):\n    print(${name(i)}, os.path.getsize(${name(i)}))\n`;

test('prepareCodeTokens: curated files → train.bin, held-out files → val.bin, with the code pattern', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-code-tokens-'));
  try {
    const w = new JsonlGzWriter(join(dir, 'curated', 'deduped', '00000.jsonl.gz'));
    for (let i = 0; i < 40; i++) await w.write({ lmforge_id: `p:m${i}.py`, text: py(i) });
    await w.close();
    const held = [script(100), script(101)];
    writeFileSync(join(dir, 'heldout.jsonl'), held.map((text, i) => JSON.stringify({ id: `p:h${i}.py`, text, path: `/x/h${i}.py` })).join('\n') + '\n');
    const out = join(dir, 'tokens');
    const r = await prepareCodeTokens(dir, out, 300, () => undefined, null);
    assert.equal(r.trainFiles, 40);
    assert.equal(r.valFiles, 2);
    const tok = loadTokenizer(join(out, 'tokenizer.lmf.json')) as BpeTokenizer;
    assert.equal(tok.pattern, 'code');
    const eot = tok.specialTokens.get('<|endoftext|>')!;
    const val = new TokenFileReader(join(out, 'val.bin'));
    const ids = Array.from(val.read(0, val.count));
    val.close();
    assert.equal(ids.filter((id) => id === eot).length, 2);
    assert.equal(tok.decode(ids.filter((id) => id !== eot)), held.join(''));
    const train = new TokenFileReader(join(out, 'train.bin'));
    assert.equal(train.count, r.trainTokens);
    train.close();
    const split = JSON.parse(readFileSync(join(out, 'split.json'), 'utf8')) as { val: string[] };
    assert.deepEqual(split.val, ['/x/h0.py', '/x/h1.py']);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')) as { vocab_size: number; val_tokens: number };
    assert.equal(meta.vocab_size, tok.vocabSize);
    assert.equal(meta.val_tokens, ids.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad corpus input is named: no curated shards, a malformed held-out line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-code-tokens-'));
  try {
    await assert.rejects(prepareCodeTokens(dir, join(dir, 'out'), 300), /curated: no deduped\/ or filtered\/ shards; run `lmforge curate/);
    writeFileSync(join(dir, 'heldout.jsonl'), '{"id":"a","text":"x","path":"/a"}\n{"id":"b"}\n');
    assert.throws(() => readHeldoutFiles(dir), /heldout\.jsonl:2: expected string fields "id", "text" and "path"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('filterHeldout: held-out files pass the curation config\'s file filters, the rest are named with the rule', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-code-tokens-'));
  try {
    const cfg = join(dir, 'curate.yaml');
    writeFileSync(cfg, 'output: out\nsources: [{name: a, paths: [x]}]\nclean: false\npii: false\nfilters: {language: false, gopher_repetition: false, gopher_quality: false, c4: false, fineweb: false, code_generated: true, code_line_length: true}\n');
    const files = [
      { id: 'p:a.py', text: py(1), path: '/a.py' },
      { id: 'p:gen.py', text: '# DO NOT EDIT\n' + py(2), path: '/gen.py' },
      { id: 'p:long.py', text: `x = [${'1, '.repeat(600)}]\n`, path: '/long.py' },
    ];
    const r = filterHeldout(files, cfg);
    assert.deepEqual(r.kept.map((f) => f.id), ['p:a.py']);
    assert.equal(r.kept[0]!.text, py(1)); // kept byte for byte
    assert.deepEqual(r.excluded, [{ id: 'p:gen.py', reason: 'code_generated_marker' }, { id: 'p:long.py', reason: 'code_max_line_length' }]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decontaminate: training copies of a held-out file go, the held-out set stays as it was', () => {
  const body = Array.from({ length: 60 }, (_, i) => `def helper_${name(i)}(value):\n    return value + ${i}\n`).join('\n');
  const held = [{ id: 'std:tomllib/_types.py', text: body }];
  const train = [
    { id: 'setuptools:_vendor/tomli/_types.py', text: body.replace(/ {4}/g, '\t') }, // a re-indented copy
    { id: 'pkg:near.py', text: body.replace('helper_daaa(', 'renamed(') }, // one name changed
    { id: 'pkg:other.py', text: py(7).repeat(30) },
  ];
  const r = decontaminate(train, held);
  assert.deepEqual(r.train.map((f) => f.id), ['pkg:other.py']);
  assert.deepEqual(r.removed.map((x) => [x.id, x.heldout]), [['setuptools:_vendor/tomli/_types.py', 'std:tomllib/_types.py'], ['pkg:near.py', 'std:tomllib/_types.py']]);
  assert.ok(r.removed.every((x) => x.jaccard >= 0.7));
});
