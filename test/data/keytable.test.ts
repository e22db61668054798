import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyTable } from '../../src/data/keytable.js';

test('KeyTable: insert/find on 52-bit keys, stable slots, capacity guard', () => {
  const t = new KeyTable(1000);
  const keys = Array.from({ length: 1000 }, (_, i) => (i * 2654435761) % 2 ** 52);
  const slots = keys.map((k) => t.insert(k));
  assert.equal(new Set(slots).size, 1000);
  assert.equal(t.size, 1000);
  keys.forEach((k, i) => assert.equal(t.find(k), slots[i]));
  assert.equal(t.insert(keys[5]!), slots[5]);
  assert.equal(t.find(2 ** 52 - 1), -1);
  const small = new KeyTable(2);
  for (let i = 0; i < small.capacity / 2; i++) small.insert(i + 0.5 * 2 ** 40);
  assert.throws(() => small.insert(7), /KeyTable: more than/);
});
