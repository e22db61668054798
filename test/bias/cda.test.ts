// Counterfactual augmentation: the swap list both ways, case kept, "her" resolved from the next word, contractions,
// duplicate vs replace, and a seeded probability that depends on the document, not on arrival order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CounterfactualAugmenter, augmentLines, readSwapPairs, swapGender, swapTable } from '../../src/data/cda.js';
import { UserError } from '../../src/util/errors.js';

test('swaps gendered words both ways and keeps their case', () => {
  assert.equal(swapGender('He met the queen; SHE met the King.').text, 'She met the king; HE met the Queen.');
  assert.equal(swapGender('The men and women of the town').text, 'The women and men of the town');
  assert.equal(swapGender('Her brother thanked himself').text, 'His sister thanked herself');
  assert.equal(swapGender('nothing gendered here').swaps, 0);
  // Words that merely contain a listed word are left alone.
  assert.equal(swapGender('The heroine managed the mansion.').text, 'The heroine managed the mansion.');
});

test('"her" becomes "him" as an object and "his" as a possessive; "his" becomes "hers" at the end of a phrase', () => {
  assert.equal(swapGender('I saw her.').text, 'I saw him.');
  assert.equal(swapGender('I gave her the book').text, 'I gave him the book');
  assert.equal(swapGender('I took her book').text, 'I took his book');
  assert.equal(swapGender('I told her that it was late').text, 'I told him that it was late');
  assert.equal(swapGender('The book is his.').text, 'The book is hers.');
  assert.equal(swapGender('his old coat').text, 'her old coat');
  assert.equal(swapGender('The coat is hers.').text, 'The coat is his.');
  // Swapping twice returns the original on these unambiguous sentences.
  for (const s of ['He said that she took his coat.', 'She thanked him and his wife.']) assert.equal(swapGender(swapGender(s).text).text, s);
});

test("contractions keep their tail: he's → she's, not she'ss", () => {
  assert.equal(swapGender("he's late and she'll wait").text, "she's late and he'll wait");
});

test('duplicate adds the swapped copy after the original; replace swaps in place; unchanged text adds nothing', () => {
  const dup = new CounterfactualAugmenter({ mode: 'duplicate', probability: 1, seed: 1, pairsFile: null });
  const out = dup.augment({ id: 'a', text: 'The nurse said she was tired.', metadata: { k: 1 } });
  assert.deepEqual(out.map((d) => [d.id, d.text]), [['a', 'The nurse said she was tired.'], ['a#cda', 'The nurse said he was tired.']]);
  assert.equal(out[1]!.metadata.cda, 'copy');
  assert.equal(out[1]!.metadata.k, 1);
  assert.equal(dup.augment({ id: 'b', text: 'no people', metadata: {} }).length, 1);
  const rep = new CounterfactualAugmenter({ mode: 'replace', probability: 1, seed: 1, pairsFile: null });
  assert.deepEqual(rep.augment({ id: 'a', text: 'he ran', metadata: {} }).map((d) => d.text), ['she ran']);
  assert.deepEqual(dup.counts, { docs: 2, augmented: 1, swaps: 1 });
});

test('probability: seeded per document id, about p of documents, same choice in any order', () => {
  const cfg = { mode: 'replace' as const, probability: 0.3, seed: 7, pairsFile: null };
  const lines = Array.from({ length: 2000 }, () => 'he ran');
  const a = augmentLines(lines, new CounterfactualAugmenter(cfg));
  const swapped = a.filter((l) => l === 'she ran').length;
  assert.ok(swapped > 2000 * 0.25 && swapped < 2000 * 0.35, `${swapped} of 2000 swapped at p = 0.3`);
  assert.deepEqual(augmentLines(lines, new CounterfactualAugmenter(cfg)), a, 'same seed, same choices');
  assert.notDeepEqual(augmentLines(lines, new CounterfactualAugmenter({ ...cfg, seed: 8 })), a, 'another seed, other choices');
  const one = new CounterfactualAugmenter(cfg);
  const ids = ['17', '3', '999'];
  const forward = ids.map((id) => one.augment({ id, text: 'he', metadata: {} })[0]!.text);
  const backward = [...ids].reverse().map((id) => one.augment({ id, text: 'he', metadata: {} })[0]!.text).reverse();
  assert.deepEqual(forward, backward);
});

test('bad settings and swap files are refused naming the field or line', () => {
  assert.throws(() => new CounterfactualAugmenter({ mode: 'replace', probability: 1.5, seed: 1, pairsFile: null }), (e: Error) => e instanceof UserError && /cda.probability/.test(e.message));
  const dir = mkdtempSync(join(tmpdir(), 'cda-'));
  const bad = join(dir, 'pairs.txt');
  writeFileSync(bad, '# pairs\nking queen\nlord\n');
  assert.throws(() => readSwapPairs(bad), (e: Error) => e instanceof UserError && e.message.includes(`${bad}:3`));
  assert.throws(() => swapTable([['her', 'his']]), /built-in rules/);
  const good = join(dir, 'good.txt');
  writeFileSync(good, 'wizard witch\n');
  const a = new CounterfactualAugmenter({ mode: 'replace', probability: 1, seed: 1, pairsFile: good });
  assert.equal(a.augment({ id: 'x', text: 'The Wizard and the witch', metadata: {} })[0]!.text, 'The Witch and the wizard');
});
