// Dense retrieval: the native inner-product top-k against the TypeScript reference (odd D, N < k, M not a multiple
// of the tile, ties, a one-thread spell); the encoder's InfoNCE gradient against central finite differences in both
// term-weight modes; a few training steps lower the loss; encoder and vectors survive a save/load; fusion.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tryLoadAddon } from '../../src/core/native/addon.js';
import { DenseEncoder, SparseGrads, TermAnalyzer, isCharGram, trainDense, DEFAULT_ADAM, DEFAULT_DENSE, DEFAULT_TRAIN, type DenseConfig, type Features } from '../../src/retrieval/dense.js';
import { loadEncoder, readVectors, saveEncoder, writeVectors } from '../../src/retrieval/dense-index.js';
import { interpolate, rrf } from '../../src/retrieval/fusion.js';
import { hasNativeIpTopK, ipTopK, ipTopKReference } from '../../src/retrieval/ip-search.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { mulberry32 } from '../../src/util/mulberry32.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const tokenizer = loadAnyTokenizer(`${root}test/fixtures/eval/tokenizer-bpe512.json`);

function randomMatrix(n: number, seed: number, quantize = false): Float32Array {
  const r = mulberry32(seed);
  // Quantized values give exact ties between different rows.
  return Float32Array.from({ length: n }, () => (quantize ? Math.round(r() * 4 - 2) : r() * 2 - 1));
}

test('native ipTopK equals the reference', { skip: !hasNativeIpTopK() && 'native addon not built' }, () => {
  for (const [N, D, M, k, quant] of [[1000, 37, 5, 10, false], [3, 16, 2, 5, false], [517, 64, 9, 1, false], [2000, 8, 3, 20, true], [50_000, 48, 1, 7, false], [0, 4, 2, 3, false]] as const) {
    const P = randomMatrix(N * D, N + D, quant);
    const Q = randomMatrix(M * D, 7 + M, quant);
    const ref = ipTopKReference(P, N, D, Q, M, k);
    const check = (got: ReturnType<typeof ipTopK>): void => {
      for (let i = 0; i < M * k; i++) {
        const rs = ref.scores[i]!;
        assert.ok(rs === -Infinity ? got.scores[i] === -Infinity : Math.abs(got.scores[i]! - rs) <= 1e-4 * (1 + Math.abs(rs)), `N=${N} D=${D} ${i}: ${got.scores[i]} vs ${rs}`);
        // Indices agree unless two scores are within rounding of each other.
        if (got.indices[i] !== ref.indices[i]) assert.ok(Math.abs(got.scores[i]! - rs) <= 1e-4 && !quant, `N=${N} D=${D} index ${i}: ${got.indices[i]} vs ${ref.indices[i]}`);
      }
    };
    check(ipTopK(P, N, D, Q, M, k));
    const addon = tryLoadAddon();
    addon?.threadPolicySolo(10_000);
    try {
      check(ipTopK(P, N, D, Q, M, k));
    } finally {
      addon?.threadPolicySolo(0);
    }
  }
  assert.throws(() => ipTopK(new Float32Array(10), 3, 4, new Float32Array(4), 1, 2), RangeError);
});

const PASSAGES = [
  'The quick brown fox jumps over the lazy dog near the river bank.',
  'Denver Broncos won the Super Bowl in the year two thousand sixteen.',
  'The river flows north through the old city and into the sea.',
  'A lazy afternoon with dogs and cats sleeping in the sun.',
  'Computers store data in memory and on disks made of spinning platters.',
];
const QUERIES = ['who won the super bowl', 'where does the river flow', 'what do computers store', 'which animals sleep in the sun'];

function tinyEncoder(config: Partial<DenseConfig>): DenseEncoder {
  return DenseEncoder.init(tokenizer, PASSAGES, QUERIES, { ...DEFAULT_DENSE, dim: 8, ...config }, 3);
}

test('InfoNCE gradient matches central differences (log and bm25 term weights; analyzer terms with pivoted length normalisation)', () => {
  const configs: [string, Partial<DenseConfig>][] = [
    ['log', { termWeight: 'log', tau: 0.5 }],
    ['bm25', { termWeight: 'bm25', tau: 2 }],
    ['terms', { termWeight: 'log', tau: 0.5, units: 'terms', bigrams: true, lengthNorm: 0.7, charGrams: 3, gramWeight: 0.7 }],
  ];
  for (const [termWeight, config] of configs) {
    const enc = tinyEncoder(config);
    const qs: Features[] = QUERIES.slice(0, 3).map((q) => enc.features(q, 'query'));
    const cs: Features[] = PASSAGES.map((p) => enc.features(p, 'passage'));
    const positive = [1, 2, 4];
    const keys = [0, 1, 2, 3, 4];
    const g = new SparseGrads();
    enc.infoNce(qs, cs, positive, keys, g);
    const loss = (): number => enc.infoNce(qs, cs, positive, keys);
    const h = 1e-2;
    const central = (arr: Float32Array, i: number): number => {
      const x = arr[i]!;
      arr[i] = x + h;
      const up = loss();
      arr[i] = x - h;
      const down = loss();
      arr[i] = x;
      return (up - down) / (2 * h);
    };
    let checked = 0;
    for (const [r, gr] of [...g.embed].slice(0, 6)) {
      for (let d = 0; d < enc.dim; d += 3) {
        const num = central(enc.embed, r * enc.dim + d);
        assert.ok(Math.abs(num - gr[d]!) <= 2e-3 + 2e-2 * Math.abs(num), `${termWeight} dE[${r},${d}]: ${gr[d]} vs ${num}`);
        checked++;
      }
    }
    for (const [name, w, gm] of [['wq', enc.wq, g.wq], ['wp', enc.wp, g.wp]] as const) {
      for (const [r, gv] of [...gm].slice(0, 5)) {
        const num = central(w, r);
        assert.ok(Math.abs(num - gv) <= 2e-3 + 2e-2 * Math.abs(num), `${termWeight} d${name}[${r}]: ${gv} vs ${num}`);
        checked++;
      }
    }
    assert.ok(checked > 20);
  }
});

test('training lowers the InfoNCE loss; the encoder and vectors round-trip through files', () => {
  const enc = tinyEncoder({ dim: 16, tau: 0.1 });
  const pf = PASSAGES.map((p) => enc.features(p, 'passage'));
  const pairs = QUERIES.map((q, i) => ({ query: enc.features(q, 'query'), positive: pf[[1, 2, 4, 3][i]!]!, passage: [1, 2, 4, 3][i]!, hardNegatives: [0] }));
  const before = enc.infoNce(pairs.map((p) => p.query), pf, [1, 2, 4, 3], [0, 1, 2, 3, 4]);
  trainDense(enc, () => pairs, pf, { ...DEFAULT_TRAIN, steps: 40, batch: 4, warmup: 5, hardPerQuery: 1, adam: { ...DEFAULT_ADAM, lr: 1e-2, lrWeights: 1e-2 } });
  const after = enc.infoNce(pairs.map((p) => p.query), pf, [1, 2, 4, 3], [0, 1, 2, 3, 4]);
  assert.ok(after < before * 0.5, `loss ${before} → ${after}`);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-dense-'));
  try {
    saveEncoder(dir, enc, tokenizer);
    const back = loadEncoder(dir);
    assert.deepEqual(back.config, enc.config);
    assert.deepEqual(back.encode(QUERIES[0]!, 'query'), enc.encode(QUERIES[0]!, 'query'));
    const V = enc.encodeMany(PASSAGES, 'passage');
    writeVectors(join(dir, 'vectors.f32'), V, PASSAGES.length, enc.dim);
    const r = readVectors(join(dir, 'vectors.f32'));
    assert.equal(r.N, PASSAGES.length);
    assert.deepEqual(r.vectors, V);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('terms units: stemmed analyzer terms and bigrams as hashed rows; pivoted length normalisation', () => {
  const a = new TermAnalyzer(true);
  // "founded" and "founding" share a stem; stopwords are dropped; a bigram joins adjacent kept terms.
  assert.deepEqual(new TermAnalyzer(false).pieces('the founding'), new TermAnalyzer(false).pieces('founded'));
  assert.equal(a.pieces('new york').length, 3);
  assert.notDeepEqual(a.pieces('new york').slice(2), a.pieces('york new').slice(2));
  // Character trigrams: a misspelling shares units with the word ("<cy", "pid", "ids", "ds>" of "cypiddids" and "cydippids").
  const g = new TermAnalyzer(false, 3);
  const shared = g.pieces('cypiddids').filter((id) => g.pieces('cydippids').includes(id));
  assert.equal(shared.length, 4);
  assert.ok(shared.every(isCharGram));
  assert.ok(!isCharGram(g.pieces('cydippids')[0]!));
  const enc = tinyEncoder({ units: 'terms', bigrams: true, lengthNorm: 0.5 });
  assert.equal(enc.analyzer instanceof TermAnalyzer, true);
  // Words never seen in the passages or queries have no row: their text encodes to zeros.
  assert.ok(enc.encode('zyzzyva quixotic', 'query').every((x) => x === 0));
  // Passage vectors have norm ‖v‖^(1 − e): longer passages keep longer vectors; queries are unit length.
  const f = enc.features(PASSAGES[4]!, 'passage');
  const raw = new DenseEncoder(tokenizer, { ...enc.config, lengthNorm: 0 }, enc.pieceIds, enc.embed, enc.wq, enc.wp).encodeFeatures(f, 'passage');
  const n = Math.hypot(...raw);
  assert.ok(Math.abs(Math.hypot(...enc.encodeFeatures(f, 'passage')) - Math.sqrt(n)) < 1e-4 * n);
  assert.ok(Math.abs(Math.hypot(...enc.encode(QUERIES[0]!, 'query')) - 1) < 1e-5);
  // A bpe encoder saved before the option existed (no units in its config) still reads BPE pieces.
  assert.equal(tinyEncoder({ units: undefined }).analyzer instanceof TermAnalyzer, false);
});

test('fusion: RRF and min–max interpolation', () => {
  const a = [{ index: 1, score: 9 }, { index: 2, score: 5 }, { index: 3, score: 1 }];
  const b = [{ index: 3, score: 0.9 }, { index: 1, score: 0.8 }, { index: 4, score: 0.1 }];
  assert.deepEqual(rrf([a, b], 2).map((h) => h.index), [1, 3]);
  assert.ok(Math.abs(rrf([a, b], 1)[0]!.score - (1 / 61 + 1 / 62)) < 1e-12);
  const mix = interpolate(a, b, 0.5, 4);
  assert.deepEqual(mix.map((h) => h.index), [1, 3, 2, 4]);
  assert.ok(Math.abs(mix[0]!.score - (0.5 * 1 + 0.5 * 0.875)) < 1e-12);
});
