import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Command } from 'commander';
import { register, resolveRank } from '../../src/cli/curate.js';
import { UserError } from '../../src/util/errors.js';

function program(out: string[]): Command {
  const p = new Command().exitOverride().configureOutput({ writeOut: (s) => out.push(s), writeErr: (s) => out.push(s) });
  register(p);
  return p;
}

test('curate: --help lists the flags; bad flags are rejected with a clear message', async () => {
  const out: string[] = [];
  await assert.rejects(program(out).parseAsync(['node', 'lmforge', 'curate', '--help']), /\(outputHelp\)/);
  const help = out.join('');
  for (const flag of ['--config', '--rank', '--world-size', '--limit', '--dry-run', '--stages', '--report']) assert.ok(help.includes(flag), flag);
  await assert.rejects(program([]).parseAsync(['node', 'lmforge', 'curate', '-c', 'x.yaml', '--stages', 'filter,shuffle']), /unknown stage "shuffle"/);
  await assert.rejects(program([]).parseAsync(['node', 'lmforge', 'curate', '-c', 'x.yaml', '--rank', '-1']), /--rank: expected an integer ≥ 0, got "-1"/);
  await assert.rejects(program([]).parseAsync(['node', 'lmforge', 'curate']), /required option/);
});

test('curate: rank and world size from flags, Slurm arrays and Kubernetes indexed jobs', () => {
  assert.deepEqual(resolveRank({ config: 'c' }, {}), { rank: 0, worldSize: 1 });
  assert.deepEqual(resolveRank({ config: 'c', rank: 2, worldSize: 4 }, {}), { rank: 2, worldSize: 4 });
  assert.deepEqual(resolveRank({ config: 'c' }, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '8' }), { rank: 4, worldSize: 8 });
  assert.deepEqual(resolveRank({ config: 'c' }, { JOB_COMPLETION_INDEX: '3', LMFORGE_WORLD_SIZE: '4' }), { rank: 3, worldSize: 4 });
  assert.throws(() => resolveRank({ config: 'c', rank: 4, worldSize: 4 }, {}), /--rank must be in \[0, 3\]/);
});

test('curate: --config runs the filter stage end to end; a bad config names file and key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-cli-'));
  const paras = (JSON.parse(gunzipSync(readFileSync('/work/shared/data/xquad-en/xquad.en.json.gz')).toString()) as {
    data: { paragraphs: { context: string }[] }[];
  }).data.flatMap((a) => a.paragraphs.map((p) => p.context));
  writeFileSync(join(dir, 'a.jsonl'), paras.slice(0, 20).map((t) => JSON.stringify({ text: t })).join('\n'));
  writeFileSync(join(dir, 'c.yaml'), 'output: out\nsources:\n  - {name: a, paths: a.jsonl}\ndedup: false\n');
  const logs: string[] = [];
  const orig = console.log;
  console.log = (s: string) => logs.push(s);
  try {
    await program([]).parseAsync(['node', 'lmforge', 'curate', '--config', join(dir, 'c.yaml'), '--rank', '0', '--world-size', '1']);
    await program([]).parseAsync(['node', 'lmforge', 'curate', '--config', join(dir, 'c.yaml'), '--report', '--json']);
  } finally {
    console.log = orig;
  }
  assert.ok(logs.some((l) => l.startsWith('stage filter (1 shards')));
  const json = JSON.parse(logs[logs.length - 1]!) as { filter: { in: { docs: number } } };
  assert.equal(json.filter.in.docs, 20);
  writeFileSync(join(dir, 'bad.yaml'), 'output: out\nsources:\n  - {name: a, paths: a.jsonl}\nfilters: {fineweb: {new_line_ratio: high}}\n');
  await assert.rejects(program([]).parseAsync(['node', 'lmforge', 'curate', '--config', join(dir, 'bad.yaml')]), (e: unknown) => {
    // A UserError: main.ts prints it as one clean line and exits 1.
    assert.ok(e instanceof UserError);
    assert.match(e.message, /bad\.yaml: filters\.fineweb\.new_line_ratio: expected a number/);
    return true;
  });
  rmSync(dir, { recursive: true });
});
