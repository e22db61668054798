// Tensor semantics beyond gradients: views, scopes and memory, edge cases, NaN and large values, and errors
// that name the op and the shapes involved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { sizeClass } from '../../src/core/storage.js';

test('views share storage and do not copy; reshape of a transposed view copies', () => {
  lm.tidy(() => {
    const x = lm.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    const t = lm.transpose(x);
    assert.equal(t.storage, x.storage);
    assert.deepEqual(t.shape, [3, 2]);
    assert.deepEqual(t.toArray(), [1, 4, 2, 5, 3, 6]);
    const s = lm.slice(x, 1, 1, 3);
    assert.equal(s.storage, x.storage);
    assert.deepEqual(s.toArray(), [2, 3, 5, 6]);
    const e = lm.expand(lm.tensor([7, 8], [2, 1]), [2, 3]);
    assert.deepEqual(e.strides, [1, 0]);
    assert.deepEqual(e.toArray(), [7, 7, 7, 8, 8, 8]);
    const r = lm.reshape(t, [6]);
    assert.notEqual(r.storage, x.storage);
    assert.deepEqual(r.toArray(), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(lm.reshape(x, [3, -1]).shape, [3, 2]);
  });
});

test('tidy releases intermediates, keeps returned tensors, and restores memory on error', () => {
  const before = lm.memory.liveBytes;
  const kept = lm.tidy(() => {
    const a = lm.ones([100]);
    const b = lm.mulScalar(a, 2);
    return lm.add(b, 1);
  });
  assert.equal(lm.memory.liveBytes - before, 400);
  assert.deepEqual(kept.toArray().slice(0, 2), [3, 3]);
  kept.dispose();
  assert.equal(lm.memory.liveBytes, before);
  assert.throws(() => lm.tidy(() => {
    lm.ones([10]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(lm.memory.liveBytes, before);
});

test('using a disposed tensor is an error that says what to do', () => {
  const x = lm.ones([3]);
  x.dispose();
  assert.throws(() => x.toArray(), /used after it was disposed/);
});

test('size-1 and empty dims work through ops and gradients', () => {
  lm.tidy(() => {
    const x = lm.requireGrad(lm.zeros([0, 3]));
    const y = lm.sum(lm.mul(x, 2));
    assert.equal(y.item(), 0);
    lm.backward(y);
    assert.deepEqual(x.grad!.shape, [0, 3]);
    const one = lm.requireGrad(lm.tensor([2], [1, 1]));
    const z = lm.sum(lm.matmul(one, one));
    lm.backward(z);
    assert.deepEqual(one.grad!.toArray(), [4]);
    assert.deepEqual(lm.softmax(lm.tensor([5], [1, 1])).toArray(), [1]);
    assert.equal(lm.concat([lm.zeros([0, 2]), lm.ones([1, 2])], 0).size, 2);
    one.dispose();
    x.dispose();
  });
});

test('softmax and cross-entropy are stable with very large logits', () => {
  lm.tidy(() => {
    const logits = lm.tensor([1e30, 0, -1e30, 3e38, 3e38, -3e38], [2, 3]);
    const p = lm.softmax(logits).toArray();
    assert.deepEqual(p.slice(0, 3), [1, 0, 0]);
    assert.ok(Math.abs(p[3]! - 0.5) < 1e-6 && Math.abs(p[4]! - 0.5) < 1e-6);
    const loss = lm.crossEntropy(lm.tensor([1000, -1000, 0, 0], [2, 2]), lm.tensor([1, 0], [2], 'int32'), { reduction: 'none' });
    const l = loss.toArray();
    assert.ok(Math.abs(l[0]! - 2000) < 1e-3);
    assert.ok(Math.abs(l[1]! - Math.LN2) < 1e-6);
  });
});

test('NaN propagates through elementwise ops, reductions, softmax and matmul', () => {
  lm.tidy(() => {
    const x = lm.tensor([1, NaN, 3]);
    for (const y of [lm.exp(x), lm.relu(x), lm.gelu(x), lm.mulScalar(x, 2)]) assert.ok(Number.isNaN(y.toArray()[1]!));
    assert.ok(Number.isNaN(lm.sum(x).item()));
    assert.ok(Number.isNaN(lm.max(x, 0).item()));
    assert.ok(lm.softmax(lm.reshape(x, [1, 3])).toArray().every(Number.isNaN));
    const m = lm.matmul(lm.reshape(x, [1, 3]), lm.ones([3, 2]));
    assert.ok(m.toArray().every(Number.isNaN));
  });
});

test('bad shapes and dtypes raise errors naming the op and the shapes', () => {
  lm.tidy(() => {
    assert.throws(() => lm.add(lm.ones([2, 3]), lm.ones([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
    assert.throws(() => lm.matmul(lm.ones([2, 3]), lm.ones([4, 5])), /matmul: inner dims differ: float32\[2, 3\] · float32\[4, 5\]/);
    assert.throws(() => lm.reshape(lm.ones([2, 3]), [4, 2]), /reshape: cannot reshape float32\[2, 3\] to \[4, 2\]/);
    assert.throws(() => lm.embedding(lm.ones([4, 2]), lm.tensor([5], [1], 'int32')), /embedding: index 5 at position 0 is outside \[0, 4\)/);
    assert.throws(() => lm.embedding(lm.ones([4, 2]), lm.ones([1])), /embedding: expected an int32 index tensor, got float32\[1\]/);
    assert.throws(() => lm.crossEntropy(lm.ones([2, 3]), lm.tensor([0, 7], [2], 'int32')), /crossEntropy: target 7 at row 1 is outside \[0, 3\)/);
    assert.throws(() => lm.crossEntropy(lm.ones([2, 3]), lm.tensor([0], [1], 'int32')), /crossEntropy: targets int32\[1\] do not match logits float32\[2, 3\]/);
    assert.throws(() => lm.add(lm.ones([2]), lm.ones([2], 'float64')), /add: dtypes differ/);
    assert.throws(() => lm.sum(lm.ones([2]), 3), /sum: axis 3 is out of range for 1 dims/);
    assert.throws(() => lm.layerNorm(lm.ones([2, 3]), lm.ones([4]), null), /layerNorm: weight must have shape \[3\], got float32\[4\]/);
    assert.throws(() => lm.selfAttention(lm.ones([1, 2, 10]), 2), /selfAttention: last dim of float32\[1, 2, 10\] must be 3·C/);
  });
});

test('gradients accumulate across backward calls and across uses', () => {
  const w = lm.requireGrad(lm.tensor([1, 2, 3]));
  lm.tidy(() => lm.backward(lm.sum(lm.mul(w, w))));
  lm.tidy(() => lm.backward(lm.sum(w)));
  assert.deepEqual(w.grad!.toArray(), [3, 5, 7]);
  lm.noGrad(() => {
    const y = lm.mul(w, 2);
    assert.equal(y.requiresGrad, false);
  });
  const d = lm.detach(w);
  assert.equal(d.requiresGrad, false);
  assert.equal(d.storage, w.storage);
  w.dispose();
});

test('live memory stays flat over 100 training steps', () => {
  const rng = new lm.Rng(1);
  const w1 = lm.requireGrad(lm.randn([16, 32], rng, 0.2));
  const w2 = lm.requireGrad(lm.randn([32, 4], rng, 0.2));
  const opt = new AdamW([{ params: [['w1', w1], ['w2', w2]] }], { lr: 1e-2 });
  const x = lm.randn([8, 16], rng);
  const y = lm.tensor([0, 1, 2, 3, 0, 1, 2, 3], [8], 'int32');
  const losses: number[] = [];
  const live: number[] = [];
  for (let step = 0; step < 100; step++) {
    const loss = lm.tidy(() => {
      const h = lm.gelu(lm.matmul(x, w1));
      const l = lm.crossEntropy(lm.matmul(h, w2), y);
      lm.backward(l);
      return l.item();
    });
    opt.step(clipGradNorm(opt.params, 1).scale);
    opt.zeroGrad();
    losses.push(loss);
    live.push(lm.memory.liveBytes);
  }
  assert.equal(new Set(live.slice(1)).size, 1, `live bytes changed: ${[...new Set(live)].join(', ')}`);
  assert.ok(losses[99]! < losses[0]! * 0.5, `loss did not fall: ${losses[0]} → ${losses[99]}`);
  for (const t of [w1, w2, x, y]) t.dispose();
  opt.dispose();
});

test('buffers are pooled by size class, so varying shapes reuse memory; arrays handed in are never recycled', () => {
  assert.deepEqual([1, 64, 65, 4096, 4097, 5000, 6145, 8192, 8193].map(sizeClass), [64, 64, 128, 4096, 5120, 5120, 7168, 8192, 10240]);
  for (let b = 1; b < 1 << 22; b = Math.ceil(b * 1.37)) assert.ok(sizeClass(b) >= b && sizeClass(b) <= Math.max(64, b <= 4096 ? b + 63 : b * 1.25), `class of ${b}`);

  lm.memory.clearPool();
  const step = (n: number): number => lm.tidy(() => lm.sum(lm.add(lm.zeros([n]), lm.ones([n]))).item());
  // Lengths 1000..1200 floats (4000..4800 bytes) fall in two classes: after the first round nothing new is pooled.
  for (let n = 1000; n <= 1200; n += 10) step(n);
  const pooled = lm.memory.pooledBytes;
  for (let n = 1005; n <= 1195; n += 10) assert.equal(step(n), n); // recycled buffers are zero-filled for the new length
  assert.equal(lm.memory.pooledBytes, pooled);

  const mine = new Float32Array([1, 2, 3]);
  lm.tidy(() => lm.mul(lm.fromArray(mine, [3]), 2));
  const other = lm.tidy(() => lm.keep(lm.zeros([3])));
  other.data[0] = 42;
  assert.deepEqual([...mine], [1, 2, 3]);
  other.dispose();
});

test('argmax: index of the maximum along an axis, ties to the lower index, (the first of equal maxima)', () => {
  const x = lm.tensor([1, 5, 5, -2, 0, -1, 3, 3, 7, 7, 2, 9], [2, 2, 3]);
  assert.deepEqual(Array.from(lm.argmax(x, 2).data as Int32Array), [1, 1, 2, 2]);
  assert.deepEqual(lm.argmax(x, 2).shape, [2, 2]);
  assert.deepEqual(Array.from(lm.argmax(x, 0).data as Int32Array), [1, 0, 1, 1, 1, 1]);
  assert.throws(() => lm.argmax(lm.zeros([2, 0]), 1), /argmax: axis 1 .* is empty/);
});
