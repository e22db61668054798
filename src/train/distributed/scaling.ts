// The scaling model of docs/scaling-model.md: from a device's measured compute rate and a link's measured latency
// and bandwidth, the time of one training step under a parallel layout (data × tensor × pipeline), hence tokens/s
// and MFU, and the bytes each rank sends per step. Pure arithmetic: bench/distributed.ts measures its inputs and
// checks it against runs on this machine; bench/scaling-model.ts prints it for other models and clusters.

/** What the model needs to know about the network being trained. */
export interface ModelShape {
  /** Trainable parameters. */
  params: number;
  layers: number;
  /** Residual width C. */
  hidden: number;
  /** Training FLOPs per token (6·N plus attention; models/gpt-cost.ts). */
  flopsPerToken: number;
  /** Bytes per gradient and activation element on the wire (4 for float32, 2 for bf16). */
  wireBytes: number;
}

/** One kind of device and the links between them. */
export interface Cluster {
  devices: number;
  /** FLOP/s one device sustains on this model's training step (measured), and its peak (for MFU). */
  achievedFlops: number;
  peakFlops: number;
  /** α: seconds per message (latency of one hop); β: bytes/s one rank can send while all send (ring step). */
  latency: number;
  bandwidth: number;
}

export interface Layout {
  dp: number;
  tp: number;
  pp: number;
  /** Micro-batches per step of a pipeline (1 without one). */
  microBatches: number;
  /** Tokens per optimizer step over all ranks (global batch × sequence length). */
  tokensPerStep: number;
  /** Fraction of the gradient all-reduce hidden behind the backward pass (0 = none, 1 = all that fits). */
  overlap: number;
}

/** Ring all-reduce of `bytes` over n ranks: 2(n−1) steps, each sending bytes/n: 2(n−1)α + 2(n−1)/n · bytes/β. */
export function allReduceSeconds(bytes: number, n: number, c: Pick<Cluster, 'latency' | 'bandwidth'>): number {
  if (n <= 1) return 0;
  return 2 * (n - 1) * c.latency + ((2 * (n - 1)) / n) * (bytes / c.bandwidth);
}

/** Bytes one rank sends in a ring all-reduce of `bytes` (what Comm.bytesSent counts). */
export function allReduceBytes(bytes: number, n: number): number {
  return n <= 1 ? 0 : ((2 * (n - 1)) / n) * bytes;
}

/** The idle fraction of a GPipe or 1F1B pipeline of p stages over m micro-batches: (p−1)/(m+p−1). */
export function bubbleFraction(p: number, m: number): number {
  return (p - 1) / (m + p - 1);
}

export interface StepPrediction {
  /** Seconds of arithmetic per rank, with the pipeline bubble. */
  computeS: number;
  bubble: number;
  /** Seconds of each kind of communication left on the critical path. */
  dpS: number;
  tpS: number;
  ppS: number;
  stepS: number;
  tokensPerS: number;
  mfu: number;
  /** Bytes each rank sends per step, by kind. */
  bytes: { dp: number; tp: number; pp: number };
}

/**
 * One step: compute split over dp·tp·pp ranks and stretched by the bubble; data-parallel gradients (the rank's
 * 1/(tp·pp) of the parameters) all-reduced over dp ranks, partly hidden behind backward (≈ 2/3 of compute);
 * Megatron tensor parallelism's 4 all-reduces of a micro-batch's activations per layer (2 forward, 2 backward);
 * pipeline sends of a micro-batch's activations forward and their gradients back at each stage boundary.
 * ZeRO-1 sends the same bytes as all-reduce (reduce-scatter + all-gather), so it is not a separate case.
 */
export function predictStep(m: ModelShape, c: Cluster, l: Layout): StepPrediction {
  const ranks = l.dp * l.tp * l.pp;
  if (ranks > c.devices) throw new Error(`layout needs ${ranks} devices, the cluster has ${c.devices}`);
  const flops = m.flopsPerToken * l.tokensPerStep;
  const bubble = bubbleFraction(l.pp, l.microBatches);
  const ideal = flops / ranks / c.achievedFlops;
  const computeS = ideal / (1 - bubble);
  // Data parallel: this rank's share of the gradients.
  const gradBytes = (m.params / (l.tp * l.pp)) * m.wireBytes;
  const dpFull = allReduceSeconds(gradBytes, l.dp, c);
  const dpS = Math.max(0, dpFull - l.overlap * (2 / 3) * ideal);
  // Activations of one micro-batch on one data-parallel replica: (tokens/(dp·m)) × C elements.
  const actBytes = (l.tokensPerStep / (l.dp * l.microBatches)) * m.hidden * m.wireBytes;
  const layersHere = m.layers / l.pp;
  const tpCalls = 4 * layersHere * l.microBatches;
  const tpS = tpCalls * allReduceSeconds(actBytes, l.tp, c);
  // A middle stage sends one activation forward and one gradient back per micro-batch (the ends send one each).
  const ppSends = l.pp > 1 ? 2 * l.microBatches : 0;
  const ppS = ppSends * (c.latency + actBytes / c.bandwidth);
  const stepS = computeS + dpS + tpS + ppS;
  const tokensPerS = l.tokensPerStep / stepS;
  return {
    computeS, bubble, dpS, tpS, ppS, stepS, tokensPerS,
    mfu: (tokensPerS * m.flopsPerToken) / (ranks * c.peakFlops),
    bytes: { dp: allReduceBytes(gradBytes, l.dp), tp: tpCalls * allReduceBytes(actBytes, l.tp), pp: ppSends * actBytes },
  };
}

/** Least-squares fit of t = α + k·β⁻¹ to measured (bytes per rank sent k, seconds t / steps) pairs. */
export function fitLatencyBandwidth(samples: readonly { steps: number; bytes: number; seconds: number }[]): { latency: number; bandwidth: number } {
  // Per ring step: t/steps = α + (bytes/steps)/β. Fit y = a + b x with x = bytes/steps, y = t/steps.
  const xs = samples.map((s) => s.bytes / s.steps);
  const ys = samples.map((s) => s.seconds / s.steps);
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  const intercept = my - slope * mx;
  if (slope > 0 && intercept >= 0) return { latency: intercept, bandwidth: 1 / slope };
  // Noisy samples (a shared machine) can give a negative α or β: fit one of them alone with the other at its bound.
  if (slope > 0) {
    const sxx0 = xs.reduce((a, x) => a + x * x, 0);
    const sxy0 = xs.reduce((a, x, i) => a + x * ys[i]!, 0);
    return { latency: 0, bandwidth: sxx0 / sxy0 };
  }
  // No growth with size: all latency (β from the largest message, as a lower bound).
  const big = xs.indexOf(Math.max(...xs));
  return { latency: my, bandwidth: xs[big]! / ys[big]! };
}
