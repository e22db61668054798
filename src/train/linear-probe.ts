// Linear probe: multinomial logistic regression on frozen features (CLIP's evaluation of representations): features
// standardised by the training set's mean and std, a (C, K) weight and bias trained full-batch with AdamW on the
// cross-entropy, accuracy on the test features. Not a feature extractor (the caller passes the features).
import * as lm from '../core/index.js';
import { AdamW } from '../optim/adamw.js';

export interface ProbeOptions {
  steps: number;
  lr: number;
  weightDecay: number;
}

export const PROBE_DEFAULTS: ProbeOptions = { steps: 300, lr: 0.05, weightDecay: 1e-4 };

/** Trains on (N, C) features with labels and returns the accuracy on the test features. */
export function linearProbe(train: Float32Array, trainLabels: Int32Array, test: Float32Array, testLabels: Int32Array, C: number, K: number, o: ProbeOptions = PROBE_DEFAULTS): { trainAccuracy: number; testAccuracy: number } {
  const N = trainLabels.length, M = testLabels.length;
  const mean = new Float64Array(C), sq = new Float64Array(C);
  for (let i = 0; i < N; i++) for (let c = 0; c < C; c++) {
    const v = train[i * C + c]!;
    mean[c] = mean[c]! + v / N;
    sq[c] = sq[c]! + (v * v) / N;
  }
  const std = Array.from(mean, (m, c) => Math.sqrt(Math.max(sq[c]! - m * m, 1e-12)));
  const standardise = (x: Float32Array, n: number): lm.Tensor => {
    const out = new Float32Array(n * C);
    for (let i = 0; i < n * C; i++) out[i] = (x[i]! - mean[i % C]!) / std[i % C]!;
    return lm.fromArray(out, [n, C]);
  };
  const xTrain = lm.keep(standardise(train, N));
  const xTest = lm.keep(standardise(test, M));
  const yTrain = lm.keep(lm.fromArray(trainLabels, [N]));
  const W = lm.keep(lm.requireGrad(lm.zeros([C, K])));
  const b = lm.keep(lm.requireGrad(lm.zeros([K])));
  const opt = new AdamW([{ params: [['weight', W]], options: { weightDecay: o.weightDecay } }, { params: [['bias', b]], options: { weightDecay: 0 } }], { lr: o.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
  for (let s = 0; s < o.steps; s++) {
    // Cosine decay of the step size over the probe's steps.
    opt.setLearningRate(o.lr * 0.5 * (1 + Math.cos((Math.PI * s) / o.steps)));
    lm.tidy(() => lm.backward(lm.crossEntropy(lm.linear(xTrain, W, b), yTrain)));
    opt.step();
    opt.zeroGrad();
  }
  const accuracy = (x: lm.Tensor, y: Int32Array): number => lm.tidy(() => lm.noGrad(() => {
    const pred = lm.argmax(lm.linear(x, W, b), 1).data as Int32Array;
    let ok = 0;
    for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) ok++;
    return ok / y.length;
  }));
  const r = { trainAccuracy: accuracy(xTrain, trainLabels), testAccuracy: accuracy(xTest, testLabels) };
  opt.dispose();
  for (const t of [xTrain, xTest, yTrain, W, b]) t.dispose();
  return r;
}
