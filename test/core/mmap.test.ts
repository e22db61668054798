import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAddon } from '../../src/core/native/addon.js';
import { mapFile } from '../../src/core/native/mmap.js';
import { UserError } from '../../src/util/errors.js';

test('native mmapFile maps whole files, empty files give empty buffers, errors name path and errno', () => {
  const addon = loadAddon();
  const dir = mkdtempSync(join(tmpdir(), 'lmf-mmap-'));
  const p = join(dir, 'data.bin');
  const data = Buffer.alloc(3 * 4096 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  writeFileSync(p, data);
  const ab = addon.mmapFile(p);
  assert.equal(ab.byteLength, data.length);
  assert.ok(Buffer.from(ab).equals(data));
  // Private pages: writing through the buffer never reaches the file.
  new Uint8Array(ab)[5] = 0xee;
  assert.equal(readFileSync(p)[5], data[5]);

  const empty = join(dir, 'empty.bin');
  writeFileSync(empty, '');
  assert.equal(addon.mmapFile(empty).byteLength, 0);

  assert.throws(() => addon.mmapFile(join(dir, 'missing.bin')), /mmapFile: cannot open '.*missing\.bin': No such file or directory \(ENOENT\)/);
  assert.throws(() => addon.mmapFile(dir), /is not a regular file/);
  assert.throws(() => (addon.mmapFile as (x: unknown) => ArrayBuffer)(42), /expected a path string/);

  const m = mapFile(p);
  assert.equal(m.mode, 'mmap');
  assert.equal(m.bytes[1], 31);
  assert.throws(() => mapFile(join(dir, 'nope')), (e: unknown) => e instanceof UserError && /nope.*ENOENT/.test(e.message));
  rmSync(dir, { recursive: true });
});

test('many maps are released by the finalizer (no fd or address-space leak)', async () => {
  const addon = loadAddon();
  const dir = mkdtempSync(join(tmpdir(), 'lmf-mmap-'));
  const p = join(dir, 'x.bin');
  writeFileSync(p, Buffer.alloc(1 << 20, 7));
  // 8000 × 1 MiB mappings; the descriptor is closed at once and the mapping goes when its buffer is collected,
  // so far fewer than 8000 are still in /proc/self/maps afterwards.
  let sum = 0;
  for (let i = 0; i < 8000; i++) sum += new Uint8Array(addon.mmapFile(p))[i]!;
  assert.equal(sum, 8000 * 7);
  await new Promise((r) => setTimeout(r, 10));
  const live = readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(p)).length;
  assert.ok(live < 4000, `${live} mappings still live`);
  rmSync(dir, { recursive: true });
});
