// The stdlib-code corpus's fixed file-level split: FNV-1a-32 values, the val rule, and the file walk (sorted,
// site-/dist-packages and symlinks left out) on this machine's /usr/lib/python3.N when there is one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { fnv1a32, isValFile, stdlibFiles } from '../../src/data/stdlib-code.js';

test('FNV-1a-32 matches its published test vectors', () => {
  assert.equal(fnv1a32(''), 0x811c9dc5);
  assert.equal(fnv1a32('a'), 0xe40c292c);
  assert.equal(fnv1a32('foobar'), 0xbf9cf968);
});

test('the val rule is a pure function of the relative path (about 5% of names)', () => {
  const names = Array.from({ length: 4000 }, (_, i) => `pkg${i % 37}/module_${i}.py`);
  const val = names.filter(isValFile).length;
  assert.ok(val > 120 && val < 280, `${val} of 4000 names are val`);
  assert.equal(isValFile('asyncio/events.py'), isValFile('asyncio/events.py'));
});

const hasStdlib = existsSync('/usr/lib') && readdirSync('/usr/lib').some((d) => /^python3\.\d+$/.test(d));
test('stdlibFiles walks the standard library sorted, without site-/dist-packages', { skip: !hasStdlib && 'no /usr/lib/python3.N here' }, () => {
  const files = stdlibFiles();
  assert.ok(files.length > 100, `${files.length} files`);
  assert.ok(files.every((f) => f.path.endsWith('.py') && !/(site|dist)-packages/.test(f.path)));
  const rels = files.map((f) => f.rel);
  assert.deepEqual(rels, [...rels].sort());
  assert.ok(files.some((f) => isValFile(f.rel)) && files.some((f) => !isValFile(f.rel)));
});
