// Adversarial debiasing: the gradient-reversal layer is the identity forward and −λ × identity backward; the
// adversary's loss differentiates like its finite differences (the adversary's own weights: +, the features it reads
// through the reversal: −λ ×); the gender labels; and a short training run with the option on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as lm from '../../src/core/index.js';
import { prepareCharData } from '../../src/data/prepare.js';
import { gradientReversal } from '../../src/nn/gradient-reversal.js';
import { readMetrics } from '../../src/train/metrics.js';
import { GenderAdversary, adversaryLoss, genderLabel } from '../../src/train/tasks/debias.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

test('gradient reversal: y = x exactly, dL/dx = −λ · dL/dy', () => {
  lm.tidy(() => {
    const x = lm.requireGrad(lm.fromArray(new Float32Array([0.5, -1.25, 3, 7e-3]), [2, 2]));
    const w = lm.fromArray(new Float32Array([1, 2, -3, 0.25]), [2, 2]);
    for (const lambda of [0, 0.3, 1, 4]) {
      x.grad = null;
      const y = gradientReversal(x, lambda);
      assert.deepEqual(y.toArray(), x.toArray());
      lm.backward(lm.sum(lm.mul(y, w)));
      assert.deepEqual(x.grad!.toArray().map((v) => Math.fround(v)), w.toArray().map((v) => Math.fround(-lambda * v)));
    }
    assert.throws(() => gradientReversal(x, -1), /λ must be/);
  });
});

test("the adversary's loss: its weights get the finite-difference gradient, the features −λ times it", () => {
  lm.tidy(() => {
    const [B, T, C, lambda] = [3, 4, 5, 0.7];
    const rng = new lm.Rng(3);
    const hidden = lm.requireGrad(lm.randn([B, T, C], rng, 1));
    const adversary = new GenderAdversary(C, 6, 11);
    const labels = new Int32Array([0, -1, 1]);
    const out = adversaryLoss(adversary, hidden, labels, lambda)!;
    assert.equal(out.rows, 2);
    lm.backward(out.loss);
    const at = (): number => lm.noGrad(() => adversaryLoss(adversary, hidden, labels, lambda)!.loss.item());
    // Central differences in float32 with a step of 1e-2: agreement to a few 1e-3 is what float32 allows here.
    const check = (t: lm.Tensor, scale: number, what: string): void => {
      const data = t.data as Float32Array;
      const grad = t.grad!.toArray();
      for (let i = 0; i < t.size; i += Math.max(1, Math.floor(t.size / 12))) {
        const keep = data[i]!;
        data[i] = keep + 1e-2;
        const up = at();
        data[i] = keep - 1e-2;
        const down = at();
        data[i] = keep;
        const fd = (up - down) / 2e-2;
        assert.ok(Math.abs(grad[i]! - scale * fd) < 3e-3 + 1e-2 * Math.abs(fd), `${what}[${i}]: autograd ${grad[i]} vs ${scale} × finite difference ${fd}`);
      }
    };
    check(adversary.fc1.weight, 1, 'fc1.weight');
    check(adversary.fc2.weight, 1, 'fc2.weight');
    check(hidden, -lambda, 'hidden');
    // The unlabelled row 1 gets no gradient at all.
    const g = hidden.grad!.toArray();
    for (let i = T * C; i < 2 * T * C; i++) assert.equal(Math.abs(g[i]!), 0);
    assert.equal(adversaryLoss(adversary, hidden, new Int32Array([-1, -1, -1]), lambda), null);
  });
});

test('gender labels come from the swap lists: majority of male vs female words, ties and none ignored', () => {
  assert.equal(genderLabel('The nurse said that she was tired'), 1);
  assert.equal(genderLabel('The KING and his men'), 0);
  assert.equal(genderLabel('he and she'), -1);
  assert.equal(genderLabel('nothing here, sheriff'), -1);
});

test('lmforge train with debias.adversary_weight trains the adversary beside the model and saves only the model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-debias-'));
  const text = readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8').slice(0, 40000);
  writeFileSync(join(dir, 'input.txt'), text);
  prepareCharData({ input: join(dir, 'input.txt'), outDir: join(dir, 'data'), valFraction: 0.1 });
  const run = (out: string, extra: string[]): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [join(root, 'dist/src/cli/main.js'), 'train', `--data_dir=${join(dir, 'data')}`, `--out_dir=${out}`,
    '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=32', '--batch_size=8', '--max_iters=6', '--eval_interval=6', '--eval_iters=1', '--log_interval=1',
    '--checkpoint_interval=3', '--threads=1', '--no-register', ...extra], { encoding: 'utf8' });
  const r = run(join(dir, 'run'), ['--debias.adversary_weight=0.5']);
  assert.equal(r.status, 0, String(r.stderr));
  const rows = readMetrics(join(dir, 'run', 'metrics.jsonl')).filter((m) => m.loss !== undefined);
  assert.ok(rows.some((m) => typeof m.adversary === 'number' && (m.adversary as number) > 0), `no adversary loss logged: ${JSON.stringify(rows[0])}`);
  const header = readFileSync(join(dir, 'run', 'model.safetensors'));
  const names = Object.keys(JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString('utf8')) as object);
  assert.ok(names.includes('transformer.wte.weight') && !names.some((n) => n.includes('adversary')), names.join(', '));
  const bad = run(join(dir, 'bad'), ['--debias.adversary_weight=0.5', '--dp=2']);
  assert.notEqual(bad.status, 0);
  assert.match(String(bad.stderr), /debias.adversary_weight/);
});
