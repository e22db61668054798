// Code evaluation: the unbiased pass@k estimator against hand-computed values and exact binomials; the sandbox on
// programs that pass, fail, do not parse, loop, eat memory, leave a child behind, reach for the network or flood
// stdout, and its concurrency limit; HumanEval problem files with bad rows; the held-out problem builder's canonical
// solutions; bits per byte against NLL-sum / ln 2 / bytes worked out by hand; seeded sampling; and `lmforge eval
// --tasks code-exec` end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { runBitsPerByte } from '../../src/eval/bits-per-byte.js';
import { passAtK, programOf, readProblems, runCodeExec } from '../../src/eval/code-exec.js';
import { GPTAdapter, logprobAt } from '../../src/eval/gpt-adapter.js';
import type { TextTokenizer } from '../../src/eval/model.js';
import { networkIsolation, runPython, runPythonMany } from '../../src/eval/sandbox.js';
import { parseTaskSpec } from '../../src/eval/task-spec.js';
import { builtinTaskDir, loadTask } from '../../src/eval/tasks.js';
import { extractProblems, moduleName, verifyProblems } from '../../src/data/code-problems.js';
import { GPT } from '../../src/models/gpt.js';
import { UserError } from '../../src/util/errors.js';

loadNativeBackend();
lm.setThreads(1);

const root = join(fileURLToPath(import.meta.url), '../../../..');
const cli = join(root, 'dist/src/cli/main.js');
const fixtures = join(root, 'test/fixtures/eval');
const problemsFixture = join(fixtures, 'code-problems.jsonl');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'lmforge-code-'));

/** 1 − C(n−c, k)/C(n, k) in exact integers, the definition. */
function exactPassAtK(n: number, c: number, k: number): number {
  const choose = (a: number, b: number): bigint => {
    if (b < 0 || b > a) return 0n;
    let r = 1n;
    for (let i = 1; i <= b; i++) r = (r * BigInt(a - b + i)) / BigInt(i);
    return r;
  };
  const scale = 10n ** 30n;
  return 1 - Number((choose(n - c, k) * scale) / choose(n, k)) / 1e30;
}

test('pass@k: hand-computed values, the exact binomial ratio, and the edge cases', () => {
  assert.equal(passAtK(10, 0, 1), 0);
  assert.ok(Math.abs(passAtK(10, 1, 1) - 0.1) < 1e-15); // 1 − 9/10
  assert.ok(Math.abs(passAtK(5, 2, 2) - 0.7) < 1e-15); // 1 − C(3,2)/C(5,2) = 1 − 3/10
  assert.ok(Math.abs(passAtK(4, 1, 2) - 0.5) < 1e-15); // 1 − C(3,2)/C(4,2) = 1 − 3/6
  assert.equal(passAtK(10, 1, 10), 1); // n − c = 9 < k: every 10-subset holds the pass
  assert.equal(passAtK(5, 4, 2), 1);
  assert.equal(passAtK(3, 3, 1), 1);
  // Large n: the binomials overflow doubles (C(200, 100) ≈ 9e58; C(1000, 500) ≈ 3e299), the product form does not.
  for (const [n, c, k] of [[200, 10, 100], [200, 1, 10], [1000, 7, 500], [50, 25, 10]] as const) {
    assert.ok(Math.abs(passAtK(n, c, k) - exactPassAtK(n, c, k)) < 1e-12, `n=${n} c=${c} k=${k}`);
  }
  assert.throws(() => passAtK(5, 6, 1), RangeError);
  assert.throws(() => passAtK(5, 1, 6), RangeError);
  assert.throws(() => passAtK(5, 1, 0), RangeError);
});

test('sandbox: pass, failing assert, syntax error and a runtime crash are results with the reason', async () => {
  const [ok, assertion, syntax, crash] = await runPythonMany(['print("hello")', 'assert 1 + 1 == 3, "wrong sum"', 'def f(:\n    pass\n', 'import os\nos.abort()'], { concurrency: 4 });
  assert.equal(ok!.status, 'passed');
  assert.equal(ok!.stdout, 'hello\n');
  assert.equal(assertion!.status, 'failed');
  assert.equal(assertion!.reason, 'AssertionError: wrong sum');
  assert.equal(syntax!.status, 'failed');
  assert.match(syntax!.reason, /^SyntaxError/);
  assert.equal(crash!.status, 'crashed');
  assert.match(crash!.reason, /SIGABRT|signal 6/);
});

test('sandbox: at most `concurrency` programs run at once', async () => {
  const shared = tmp();
  const program = `import os, time\nmine = os.path.join(${JSON.stringify(shared)}, str(os.getpid()))\nopen(mine, 'w').close()\ntime.sleep(0.3)\nprint(len(os.listdir(${JSON.stringify(shared)})))\nos.remove(mine)\n`;
  const results = await runPythonMany(Array(6).fill(program), { concurrency: 2 });
  const alive = results.map((r) => Number(r.stdout.trim()));
  assert.ok(results.every((r) => r.status === 'passed'));
  assert.ok(Math.max(...alive) <= 2 && Math.min(...alive) >= 1, `programs alive at once: ${alive.join(', ')}`);
});

test('sandbox: an infinite loop is killed at the wall-clock limit', async () => {
  const t0 = performance.now();
  const r = await runPython('while True:\n    pass\n', { timeoutS: 1 });
  const s = (performance.now() - t0) / 1000;
  assert.equal(r.status, 'timeout');
  assert.match(r.reason, /wall-clock limit of 1 s/);
  assert.ok(s < 2.5, `took ${s.toFixed(2)} s`);
});

test('sandbox: a CPU limit below the wall limit ends a busy loop too', async () => {
  // A generous wall limit: on a loaded machine one CPU-second can take several seconds of wall time.
  const r = await runPython('while True:\n    pass\n', { timeoutS: 30, cpuS: 1 });
  assert.equal(r.status, 'timeout');
  assert.match(r.reason, /CPU-time limit of 1 s/);
});

test('sandbox: a memory hog stops at the address-space limit', async () => {
  const r = await runPython('chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n', { memoryMb: 256, timeoutS: 10 });
  assert.equal(r.status, 'memory');
  assert.match(r.reason, /address-space limit of 256 MiB/);
});

test('sandbox: a forked child that outlives the program is killed with its process group', async () => {
  const program = 'import os, sys, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\nprint(pid)\nsys.stdout.flush()\n';
  const r = await runPython(program, { timeoutS: 5 });
  assert.equal(r.status, 'passed');
  const child = Number(r.stdout.trim());
  assert.ok(child > 0);
  // Killed (or a zombie of its namespace's reaper): it no longer runs.
  const state = existsSync(`/proc/${child}/stat`) ? readFileSync(`/proc/${child}/stat`, 'utf8').split(') ')[1]![0] : 'gone';
  assert.ok(state === 'gone' || state === 'Z', `child ${child} is in state ${state}`);
  assert.ok(r.seconds < 3, `waited ${r.seconds} s for the child`);
});

test('sandbox: no network, in the namespace mode and with sockets disabled; a private working directory', async () => {
  const reach = 'import socket\nsocket.create_connection(("1.1.1.1", 53), timeout=2)\n';
  const mode = networkIsolation();
  const auto = await runPython(reach, { timeoutS: 5 });
  assert.equal(auto.status, 'failed', `${mode}: ${auto.reason}`);
  assert.match(auto.reason, /OSError|unreachable|network/i);
  const off = await runPython(reach, { timeoutS: 5, network: 'sockets-disabled' });
  assert.equal(off.status, 'failed');
  assert.match(off.reason, /network disabled by the lmforge sandbox/);
  const cwd = await runPython('import os\nprint(os.getcwd())\nopen("scratch.txt", "w").write("x")\nprint(sorted(os.listdir(".")))\n');
  const [dir, listing] = cwd.stdout.trim().split('\n');
  assert.match(dir!, /lmforge-sandbox-/);
  assert.equal(listing, "['preamble.py', 'program.py', 'scratch.txt']");
  assert.ok(!existsSync(dir!), 'the working directory is removed afterwards');
  const flood = await runPython('import sys\nsys.stdout.write("x" * 1000000)\n', { maxOutput: 1000 });
  assert.equal(flood.status, 'passed');
  assert.ok(flood.stdout.startsWith('x'.repeat(1000) + '\n[… 999000 more bytes dropped]'), flood.stdout.slice(990, 1100));
  const stdin = await runPython('import sys\nprint(repr(sys.stdin.read()))\n');
  assert.equal(stdin.stdout, "''\n");
});

test('HumanEval problem files: a missing or mistyped field names the line; completions files likewise', async () => {
  const dir = tmp();
  const good = { task_id: 'T/0', prompt: 'def f(x):\n', canonical_solution: '    return x + 1\n', test: 'def check(candidate):\n    assert candidate(1) == 2\n', entry_point: 'f' };
  const missing: Record<string, string> = { ...good, task_id: 'T/1' };
  delete missing.entry_point;
  writeFileSync(join(dir, 'p.jsonl'), `${JSON.stringify(good)}\n\n${JSON.stringify(missing)}\n`);
  assert.throws(() => readProblems(join(dir, 'p.jsonl')), (e: unknown) => e instanceof UserError && e.message === `${join(dir, 'p.jsonl')}:3: missing field entry_point (a HumanEval problem has task_id, prompt, canonical_solution, test, entry_point)`);
  writeFileSync(join(dir, 'q.jsonl'), `${JSON.stringify({ ...good, test: 3 })}\n`);
  assert.throws(() => readProblems(join(dir, 'q.jsonl')), /q\.jsonl:1: field test must be a string, got 3/);
  writeFileSync(join(dir, 'r.jsonl'), `${JSON.stringify(good)}\n${JSON.stringify(good)}\n`);
  assert.throws(() => readProblems(join(dir, 'r.jsonl')), /r\.jsonl:2: task_id "T\/0" appears twice/);
  writeFileSync(join(dir, 'ok.jsonl'), `${JSON.stringify(good)}\n`);
  const spec = parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'ok.jsonl' }, metrics: ['pass@1'] }, 'c.json');
  writeFileSync(join(dir, 'samples.jsonl'), `${JSON.stringify({ task_id: 'T/0', completion: '    return x + 1\n' })}\n${JSON.stringify({ task_id: 'T/0', completion: '    return x\n' })}\n`);
  const r = await runCodeExec(spec, { dataDir: dir, source: 'c', completions: { kind: 'file', path: join(dir, 'samples.jsonl') } });
  assert.equal(r.metrics['pass@1']!.value, 0.5);
  writeFileSync(join(dir, 'bad-samples.jsonl'), `${JSON.stringify({ task_id: 'T/0', text: 'x' })}\n`);
  await assert.rejects(runCodeExec(spec, { dataDir: dir, source: 'c', completions: { kind: 'file', path: join(dir, 'bad-samples.jsonl') } }), /bad-samples\.jsonl:1: field completion must be a string/);
  assert.throws(() => parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'x' }, metrics: ['pass@0'] }, 'c.json'), /c\.json: field metrics must be a list of pass@k names/);
  assert.throws(() => parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'x' }, metrics: ['pass@1'], code: { top_p: 2 } }, 'c.json'), /c\.json: field code\.top_p must be a number in \(0, 1\]/);
  assert.throws(() => parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'x' }, metrics: ['pass@1'], code: { samples: 0 } }, 'c.json'), /field code\.samples must be an integer ≥ 1/);
  assert.throws(() => parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'x' }, metrics: ['pass@1'], code: { sample: 3 } }, 'c.json'), /unknown field code\.sample/);
  assert.equal(loadTask('code-exec', [builtinTaskDir()]).code!.stop.includes('\nif __name__'), true);
  const noPython = parseTaskSpec({ task: 'c', version: 1, type: 'code_exec', data: { path: 'ok.jsonl' }, metrics: ['pass@1'], code: { python: join(dir, 'no-python') } }, 'c.json');
  await assert.rejects(runCodeExec(noPython, { dataDir: dir, source: 'c', completions: { kind: 'canonical' } }), /task c: field code\.python = .*no-python does not run/);
});

test('the problem builder: real held-out functions; canonical solutions pass, stub bodies fail', async (t) => {
  assert.equal(moduleName('pkg_resources/_vendor/more_itertools/recipes.py'), 'pkg_resources._vendor.more_itertools.recipes');
  assert.equal(moduleName('xml/__init__.py'), 'xml');
  const rel = 'pkg_resources/_vendor/more_itertools/recipes.py';
  const path = `/usr/lib/python3/dist-packages/${rel}`;
  if (!existsSync(path)) {
    t.skip(`${path} is not on this machine`);
    return;
  }
  const { problems } = extractProblems({ 'dist-packages': [{ path, rel }] });
  assert.ok(problems.length >= 10, `${problems.length} problems`);
  for (const p of problems) {
    assert.ok(p.prompt.includes(`def ${p.entry_point}(`) && p.prompt.trimEnd().endsWith('"""'), p.prompt.slice(-200));
    assert.match(p.test, /def check\(candidate\):/);
  }
  // The first few as the build script runs them: canonical solutions pass, stub bodies fail.
  const some = problems.slice(0, 4);
  const statuses: string[] = [];
  const { kept, dropped } = await verifyProblems(some, async (pairs) => {
    const results = await runPythonMany(pairs.map((x) => programOf({ ...x.problem, where: x.problem.source }, x.completion)), { concurrency: 2, timeoutS: 20 });
    statuses.push(...results.map((r) => `${r.status} ${r.reason}`));
    return results.map((r) => r.status);
  });
  assert.deepEqual(dropped, {}, statuses.join('\n'));
  assert.deepEqual(kept.map((p) => p.entry_point), some.map((p) => p.entry_point));
  assert.deepEqual(statuses.map((s) => s.split(' ')[0]), some.flatMap(() => ['passed', 'failed']));
});

test('bits per byte is Σ NLL / ln 2 / UTF-8 bytes, the NLL summed by hand from full forward passes', () => {
  const byteTok: TextTokenizer = { encode: (t) => [...Buffer.from(t, 'utf8')], decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('utf8'), prefixToken: 256 };
  const model = new GPT({ vocab_size: 257, block_size: 64, n_layer: 2, n_head: 2, n_embd: 16 }, 11).eval();
  const dir = tmp();
  const texts = ['def f(x):\n    return x + 1\n', 'naïve café = "é"\n'];
  texts.forEach((t, i) => writeFileSync(join(dir, `f${i}.py`), t));
  writeFileSync(join(dir, 'split.json'), JSON.stringify({ val: ['f0.py', join(dir, 'f1.py')] }));
  const spec = parseTaskSpec({ task: 'bpb', version: 1, type: 'bits_per_byte', data: { path: 'split.json' }, metrics: ['bits_per_byte', 'xz_bits_per_byte'] }, 'bpb.json');
  const r = runBitsPerByte(spec, new GPTAdapter(model, byteTok), { dataDir: dir, source: 'bpb' });
  let nll = 0;
  let bytes = 0;
  for (const t of texts) {
    const ids = [256, ...Buffer.from(t, 'utf8')];
    bytes += ids.length - 1;
    lm.tidy(() => {
      const V = 257;
      const logits = lm.noGrad(() => model.forward(lm.tensor(ids.slice(0, -1), [1, ids.length - 1], 'int32')).logits).toTypedArray();
      for (let p = 0; p < ids.length - 1; p++) nll -= logprobAt(logits.slice(p * V, (p + 1) * V), ids[p + 1]!).logprob;
    });
  }
  assert.equal(bytes, Buffer.byteLength(texts.join(''), 'utf8'));
  assert.ok(bytes > texts.join('').length, 'the multi-byte characters count as bytes, not characters');
  const want = nll / Math.LN2 / bytes;
  assert.ok(Math.abs(r.metrics.bits_per_byte!.value - want) < 1e-9 * want, `${r.metrics.bits_per_byte!.value} vs ${want}`);
  assert.equal((r.details as { bytes: number }).bytes, bytes);
  if (r.metrics.xz_bits_per_byte) assert.ok(r.metrics.xz_bits_per_byte.value > 0);
  writeFileSync(join(dir, 'missing.txt'), 'f0.py\nnope.py\n');
  assert.throws(() => runBitsPerByte(spec, new GPTAdapter(model, byteTok), { dataDir: dir, source: 'bpb', dataFile: join(dir, 'missing.txt') }), /missing\.txt: listed file .*nope\.py not found/);
});

test('lmforge eval --tasks code-exec: sampled completions give pass@k; canonical completions give pass@1 = 1', () => {
  const dir = tmp();
  const out = join(dir, 'report.json');
  const base = [cli, 'eval', '--tasks', 'code-exec', '--data', problemsFixture, '--threads', '1', '--concurrency', '2'];
  const r = spawnSync(process.execPath, [...base, '--model', join(fixtures, 'model'), '--tokenizer', join(fixtures, 'tokenizer-bpe512.json'), '--samples', '2', '--output', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\|code-exec\s*\|1\s*\|0\s*\|pass@1\s*\|\s*0\.\d{4}\|±\|/);
  assert.doesNotMatch(r.stdout, /pass@10/); // 2 samples per problem: pass@10 cannot be estimated
  const report = JSON.parse(readFileSync(out, 'utf8')) as { results: { n: number; metrics: Record<string, { value: number }>; details: { samples_per_problem: number; sandbox: { network: string }; not_reported: string } }[] };
  const res = report.results[0]!;
  assert.equal(res.n, 3);
  assert.equal(res.details.samples_per_problem, 2);
  assert.match(res.details.not_reported, /pass@10/);
  const samples = readFileSync(join(dir, 'report.samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { task_id: string; n: number; passed: number; results: { completion: string; status: string }[] });
  assert.equal(samples.length, 3);
  assert.ok(samples.every((s) => s.n === 2 && s.results.length === 2 && s.results.every((x) => typeof x.completion === 'string' && x.status !== '')));
  const canon = spawnSync(process.execPath, [...base, '--completions', 'canonical'], { encoding: 'utf8' });
  assert.equal(canon.status, 0, canon.stderr);
  assert.match(canon.stdout, /\|code-exec\s*\|1\s*\|0\s*\|pass@1\s*\|\s*1\.0000\|±\|\s*0\.0000\|/);
  const noSource = spawnSync(process.execPath, [...base], { encoding: 'utf8' });
  assert.equal(noSource.status, 1);
  assert.match(noSource.stderr, /^error: --model <dir> is required \(code_exec tasks alone may take --completions/);
});

test('sampled completions: n rows per request, seeded per row (the same with any batching), greedy = generateUntil', () => {
  const byteTok: TextTokenizer = { encode: (t) => [...Buffer.from(t, 'utf8')], decode: (ids) => Buffer.from(ids.filter((i) => i < 256)).toString('latin1'), prefixToken: 256 };
  const adapter = new GPTAdapter(new GPT({ vocab_size: 257, block_size: 48, n_layer: 1, n_head: 2, n_embd: 16 }, 5).eval(), byteTok);
  const req = { context: 'def f(x):\n', stop: ['\n#'], maxTokens: 6 };
  const [rows] = adapter.sampleUntil([{ ...req, n: 34, temperature: 1, topP: 1, seed: 9 }]);
  assert.equal(rows!.length, 34);
  assert.ok(new Set(rows).size > 1, 'samples differ');
  // Rows 32 and 33 come from the second batch of 32; alone, with seeds 9 + 32 and 9 + 33, they are the same.
  const [tail] = adapter.sampleUntil([{ ...req, n: 2, temperature: 1, topP: 1, seed: 9 + 32 }]);
  assert.deepEqual(tail, rows!.slice(32));
  const [greedy] = adapter.sampleUntil([{ ...req, n: 3, temperature: 0, topP: 1, seed: 0 }]);
  assert.deepEqual(greedy, Array(3).fill(adapter.generateUntil([req])[0]));
});
