// The scaling model's script (docs/scaling-model.md): predicted step time, tokens/s, MFU and bytes per rank for a
// model on a cluster, for one layout or for every dp × tp × pp factorisation of the devices. Inputs are flags; the
// defaults are an illustrative 1.3B-parameter GPT on 64 devices of 312 TFLOP/s peak sustaining 40% of it, with
// 100 GB/s links of 5 µs latency — replace them with measured figures (bench/distributed.ts measures this machine's).
// Usage: npm run bench -- scaling-model [--params=1.3e9 --layers=24 --hidden=2048 --seq=2048 --batch=512
//   --devices=64 --peak=312e12 --achieved=0.4 --bandwidth=100e9 --latency=5e-6 --wire=2 --overlap=0.8]
//   [--dp=N --tp=N --pp=N --micro=N]
import { cpuName } from '../src/util/cpu.js';
import { predictStep, type Cluster, type Layout, type ModelShape } from '../src/train/distributed/scaling.js';
import { stringFlag } from './_args.js';

function num(args: string[], name: string, fallback: number): number {
  const v = stringFlag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`bench/scaling-model: --${name} expects a number ≥ 0, got ${v}`);
  return n;
}

export async function run(args: string[]): Promise<void> {
  const params = num(args, 'params', 1.3e9);
  const layers = num(args, 'layers', 24);
  const hidden = num(args, 'hidden', 2048);
  const seq = num(args, 'seq', 2048);
  const batch = num(args, 'batch', 512);
  // 6N per token for the matmuls plus attention's 12·L·C·T (Kaplan et al.; models/gpt-cost.ts counts the same).
  const model: ModelShape = { params, layers, hidden, flopsPerToken: 6 * params + 12 * layers * hidden * seq, wireBytes: num(args, 'wire', 2) };
  const peak = num(args, 'peak', 312e12);
  const cluster: Cluster = {
    devices: num(args, 'devices', 64), peakFlops: peak, achievedFlops: num(args, 'achieved', 0.4) * peak,
    latency: num(args, 'latency', 5e-6), bandwidth: num(args, 'bandwidth', 100e9),
  };
  const tokensPerStep = batch * seq;
  const overlap = num(args, 'overlap', 0.8);
  const fixed = ['dp', 'tp', 'pp'].every((k) => stringFlag(args, k) !== undefined);
  const layouts: Layout[] = [];
  if (fixed) {
    const pp = num(args, 'pp', 1);
    layouts.push({ dp: num(args, 'dp', 1), tp: num(args, 'tp', 1), pp, microBatches: num(args, 'micro', 4 * pp), tokensPerStep, overlap });
  } else {
    const D = cluster.devices;
    for (let tp = 1; tp <= Math.min(8, D); tp *= 2) {
      for (let pp = 1; tp * pp <= D; pp *= 2) {
        if (D % (tp * pp) !== 0 || layers % pp !== 0) continue;
        const dp = D / (tp * pp);
        // Each data-parallel replica needs at least one sequence per micro-batch.
        const micro = Math.min(4 * pp, Math.max(1, Math.floor(batch / dp)));
        if (batch % dp !== 0) continue;
        layouts.push({ dp, tp, pp, microBatches: pp > 1 ? micro : 1, tokensPerStep, overlap });
      }
    }
  }
  console.log(`scaling model (run on ${cpuName()}): ${(params / 1e9).toFixed(2)}B parameters, ${layers} layers × ${hidden}, ${tokensPerStep.toLocaleString('en-US')} tokens per step; `
    + `${cluster.devices} devices at ${(cluster.achievedFlops / 1e12).toFixed(0)}/${(peak / 1e12).toFixed(0)} TFLOP/s, links ${(cluster.bandwidth / 1e9).toFixed(0)} GB/s, ${(cluster.latency * 1e6).toFixed(1)} µs`);
  console.log('  dp  tp  pp   m   bubble   compute_s   dp_s     tp_s     pp_s     tokens/s      MFU   GB/rank/step (dp+tp+pp)');
  const rows = layouts.map((l) => ({ l, p: predictStep(model, cluster, l) })).sort((a, b) => b.p.tokensPerS - a.p.tokensPerS);
  for (const { l, p } of rows) {
    const gb = (p.bytes.dp + p.bytes.tp + p.bytes.pp) / 1e9;
    console.log(`${String(l.dp).padStart(4)}${String(l.tp).padStart(4)}${String(l.pp).padStart(4)}${String(l.microBatches).padStart(4)}   ${(100 * p.bubble).toFixed(1).padStart(5)}%   ${p.computeS.toFixed(3).padStart(8)}  ${p.dpS.toFixed(3).padStart(7)}  ${p.tpS.toFixed(3).padStart(7)}  ${p.ppS.toFixed(3).padStart(7)}  ${p.tokensPerS.toFixed(0).padStart(11)}  ${(100 * p.mfu).toFixed(1).padStart(6)}%   ${gb.toFixed(2)}`);
  }
  const best = rows[0];
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), model, cluster, best: best ? { ...best.l, tokens_per_s: best.p.tokensPerS, mfu: best.p.mfu, step_s: best.p.stepS } : null, layouts: rows.length })}`);
}
