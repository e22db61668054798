// The code corpus's license reading (src/data/code-corpus.ts): DEP-5 files by their "Files: *" paragraph, free-form
// files by the declared license's own wording, and the package list's format; on this machine, the real copyright
// files of a few packages when they are installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { DIST_PACKAGES, isPermissive, packagePyFiles, packageVersion, parsePackageList, readLicense } from '../../src/data/code-corpus.js';

const dep5 = (license: string): string =>
  `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: *\nCopyright: 2020 A\nLicense: ${license}\n\nFiles: debian/*\nLicense: GPL-2+\n`;

test('license expressions: permissive when every "and" part has a permissive alternative', () => {
  for (const l of ['MIT', 'Expat', 'BSD-3-clause', 'Apache-2.0', 'PSF', 'ISC', 'BSD-3-clause or Apache-2.0', 'GPL-2+ or MIT']) assert.ok(isPermissive(l), l);
  for (const l of ['GPL-2+', 'LGPL-2.1', 'MPL-2.0', 'MIT and GPL-3', 'public-domain']) assert.ok(!isPermissive(l), l);
});

test('readLicense: the Files: * paragraph of a DEP-5 file, not the debian/ one', () => {
  assert.deepEqual(readLicense(dep5('BSD-3-clause'), 'MIT', 'c'), { license: 'BSD-3-clause', basis: 'dep5-files-star' });
  assert.throws(() => readLicense(dep5('MPL-2.0'), 'MIT', '/usr/share/doc/x/copyright'), /\/usr\/share\/doc\/x\/copyright: "Files: \*" is licensed "MPL-2.0"/);
});

test('readLicense: a free-form file must hold the declared license wording', () => {
  const bsd = 'Copyright 2010 X\n\nRedistribution and use in source and binary forms, with or without modification...';
  assert.deepEqual(readLicense(bsd, 'BSD-3-clause', 'c'), { license: 'BSD-3-clause', basis: 'declared-text-found' });
  assert.throws(() => readLicense(bsd, 'MIT', 'c'), /c: no MIT license text found/);
  assert.throws(() => readLicense(bsd, 'GPL-2', 'c'), /declared license "GPL-2" is not/);
});

test('parsePackageList: pairs, comments, and a bad line named by file and line', () => {
  assert.deepEqual(parsePackageList('# list\npython3-six  Expat  # small\n\npython3-idna BSD-3-clause\n', 'l.txt').map((e) => [e.name, e.declared, e.line]), [
    ['python3-six', 'Expat', 2],
    ['python3-idna', 'BSD-3-clause', 4],
  ]);
  assert.throws(() => parsePackageList('python3-six\n', 'l.txt'), /l\.txt:1: expected "<debian-package> <license>"/);
  assert.throws(() => parsePackageList('# nothing\n', 'l.txt'), /l\.txt: no packages listed/);
});

const shipped = new URL('../../../scripts/code-packages.txt', import.meta.url);
test('the shipped package list: every installed package reads as permissive', { skip: !existsSync(shipped) && 'no scripts/code-packages.txt' }, () => {
  const entries = parsePackageList(readFileSync(shipped, 'utf8'), 'scripts/code-packages.txt');
  assert.ok(entries.length >= 10);
  for (const e of entries) {
    const file = `/usr/share/doc/${e.name}/copyright`;
    if (!existsSync(file)) continue;
    assert.ok(isPermissive(readLicense(readFileSync(file, 'utf8'), e.declared, file).license), e.name);
  }
});

const hasDpkg = existsSync('/usr/bin/dpkg-query') && existsSync('/usr/share/doc/python3-six/copyright');
test('packageVersion and packagePyFiles read dpkg on this machine', { skip: !hasDpkg && 'no dpkg or python3-six here' }, () => {
  assert.match(packageVersion('python3-six'), /^\d/);
  const files = packagePyFiles('python3-six');
  assert.deepEqual(files.map((f) => f.rel), ['six.py']);
  assert.equal(files[0]!.path, `${DIST_PACKAGES}/six.py`);
  assert.throws(() => packageVersion('python3-no-such-package-lmforge'), /python3-no-such-package-lmforge: not installed .*scripts\/code-corpus\.sh/);
});
