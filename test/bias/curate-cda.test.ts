// Counterfactual augmentation as a curation step: `cda:` in a curate config adds each kept document's swapped copy
// (duplicate) or swaps a seeded share in place (replace), after the filters; the shard report counts what changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../src/data/config.js';
import type { Document } from '../../src/data/document.js';
import { collectReports, runStages } from '../../src/data/pipeline.js';
import { readShard } from '../../src/data/readers.js';
import { UserError } from '../../src/util/errors.js';

const TEXTS = [
  'The carpenter said that he would finish the new kitchen cabinets before the end of the week, and he kept his word to the family who had waited all month.',
  'The nurse told the patients that she would return after lunch with the medicine, and she came back exactly on time as she had promised them all.',
  'The weather over the northern hills stayed cold and grey for the whole of the long winter, and the rivers froze solid from the mountains down to the sea.',
];

async function kept(dir: string): Promise<Document[]> {
  const out: Document[] = [];
  const d = join(dir, 'out', 'filtered');
  for (const f of readdirSync(d).filter((x) => x.endsWith('.jsonl.gz')).sort()) for await (const doc of readShard(join(d, f))) out.push(doc);
  return out;
}

test('curate with cda: duplicate adds the swapped copies after the filters, replace swaps in place', async () => {
  const o = { rank: 0, worldSize: 1, limit: null, dryRun: false, log: () => {} };
  for (const mode of ['duplicate', 'replace'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'lmforge-cda-'));
    writeFileSync(join(dir, 'a.jsonl'), TEXTS.map((t) => JSON.stringify({ text: t })).join('\n'));
    const cfg = validateConfig({ output: 'out', sources: [{ name: 'a', paths: ['a.jsonl'] }], filters: { gopher_quality: false, gopher_repetition: false, c4: false, fineweb: false, language: false }, cda: { mode } }, dir);
    await runStages(cfg, ['filter'], o);
    const docs = await kept(dir);
    const texts = docs.map((d) => d.text);
    if (mode === 'duplicate') {
      assert.equal(docs.length, 5, texts.join('\n'));
      assert.ok(texts[1]!.startsWith('The carpenter said that she would finish'));
      assert.ok(texts[3]!.startsWith('The nurse told the patients that he would return'));
      assert.equal(texts[4], TEXTS[2]);
    } else {
      assert.equal(docs.length, 3);
      assert.ok(texts[0]!.includes('she kept her word'));
    }
    const rep = collectReports(cfg, 'filter')!;
    assert.equal(rep.extra.cda_augmented, 2);
    assert.equal(rep.out.docs, docs.length);
    rmSync(dir, { recursive: true });
  }
  assert.throws(() => validateConfig({ output: 'out', sources: [{ name: 'a', paths: ['a.jsonl'] }], cda: { mode: 'swap' } }, '/tmp'), (e: Error) => e instanceof UserError && /cda\.mode/.test(e.message));
  assert.throws(() => validateConfig({ output: 'out', sources: [{ name: 'a', paths: ['a.jsonl'] }], cda: { probability: 3 } }, '/tmp'), (e: Error) => e instanceof UserError && /cda\.probability/.test(e.message));
});
