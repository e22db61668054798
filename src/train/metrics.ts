// Training metrics: a JSONL log (<run>/metrics.jsonl, one record per line, handed to the OS per line so a killed
// run keeps every line it logged) and the progress line printed each log interval, with MFU per nanoGPT/PaLM.
// Not a dashboard or a plotting tool: those read metrics.jsonl.
import { closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { ensureDir } from '../util/fs.js';

export const METRICS_FILE = 'metrics.jsonl';

export type MetricValue = number | string | boolean | null;
/** One line of metrics.jsonl; `step` orders the curve. */
export type MetricRecord = { step: number } & Record<string, MetricValue>;

export interface MetricsOpenOptions {
  /**
   * Resuming: the first step the resumed run will log. Records with step ≥ resumeFrom (logged after the checkpoint
   * the run resumes from) are dropped so the curve continues without duplicates or a jump. Omitted: a fresh run,
   * and an existing metrics.jsonl is emptied.
   */
  resumeFrom?: number;
}

/** Appends metric records to <runDir>/metrics.jsonl. */
export class MetricsLogger {
  readonly path: string;
  private fd: number | null;

  constructor(runDir: string, options: MetricsOpenOptions = {}) {
    ensureDir(runDir, 'run directory', { checkWritable: false });
    this.path = join(runDir, METRICS_FILE);
    const keep = options.resumeFrom === undefined ? [] : readMetrics(this.path).filter((r) => r.step < options.resumeFrom!);
    // Rewriting atomically also drops a torn last line left by a run killed mid-write.
    if (existsSync(this.path) || keep.length) writeFileAtomic(this.path, keep.map((r) => JSON.stringify(r) + '\n').join(''));
    this.fd = openSync(this.path, 'a');
  }

  /** Appends one record (written to the OS before returning). Numbers that are not finite are logged as null. */
  log(record: MetricRecord): void {
    if (this.fd === null) throw new Error(`MetricsLogger(${this.path}): log after close`);
    if (!Number.isInteger(record.step)) throw new Error(`MetricsLogger: step must be an integer, got ${record.step}`);
    const line = JSON.stringify(record, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)) + '\n';
    writeSync(this.fd, line);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Every complete record of a metrics.jsonl (a torn or unparsable line is skipped). Missing file: []. */
export function readMetrics(path: string): MetricRecord[] {
  if (!existsSync(path)) return [];
  const out: MetricRecord[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const r: unknown = JSON.parse(line);
      if (typeof r === 'object' && r !== null && Number.isInteger((r as { step?: unknown }).step)) out.push(r as MetricRecord);
    } catch {
      // a line cut short by a kill
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Throughput and MFU

export interface GptShape {
  /** Parameters counted as nanoGPT does: all but the position embedding (the tied token embedding counts once). */
  nParams: number;
  nLayer: number;
  nEmbd: number;
  blockSize: number;
}

/**
 * Training FLOPs per token (forward + backward), as in nanoGPT's estimate_mfu after PaLM appendix B:
 * 6N for the weight matmuls plus 12·L·C·T for attention (QKᵀ and AV, forward and backward), C = H·head_dim.
 */
export function estimateFlopsPerToken(s: GptShape): number {
  return 6 * s.nParams + 12 * s.nLayer * s.nEmbd * s.blockSize;
}

/** The figures of one log interval, as printed and as logged. */
export interface ProgressRecord extends MetricRecord {
  max_steps: number;
  loss: number;
  lr: number;
  ms_per_iter: number;
  tokens_per_s: number;
  /** Model FLOPs utilisation in [0, 1] against peak_flops (null when no peak is configured). */
  mfu: number | null;
  eta_s: number;
}

/**
 * Turns per-step wall times into progress records. ms/iter is smoothed (exponential moving average, like nanoGPT's
 * running MFU) after the first `skip` steps, which include warm-up work that would distort the ETA.
 */
export class ProgressTracker {
  private ema: number | null = null;
  private seen = 0;
  /** The peak MFU is a fraction of: the given one, raised to an achieved rate above it when it is a measurement. */
  private peak: number | null;
  /** The highest achieved FLOP/s that raised a measured peak (null: none did). */
  observedPeak: number | null = null;

  constructor(
    private readonly opts: {
      maxSteps: number;
      /** Tokens processed per optimizer step (B·T·grad_accum). */
      tokensPerStep: number;
      flopsPerToken: number;
      /** Peak FLOP/s of the machine, for MFU; 0 or null disables MFU. */
      peakFlops: number | null;
      /**
       * The peak is a measurement (a lower bound: a busy machine measures low), so a faster step raises it and MFU
       * stays at or below 1 (infra.ts). False: a given peak, kept as it is.
       */
      peakMeasured?: boolean;
      /** Weight of the newest timing in the average (default 0.1). */
      smoothing?: number;
      /** Steps whose timing is not averaged in (default 1: the first step warms caches and allocators). */
      skip?: number;
    },
  ) {
    this.peak = opts.peakFlops || null;
  }

  /** Records the wall time of one step (ms) and returns the figures after step `step` (0-based). */
  update(step: number, loss: number, lr: number, stepMs: number): ProgressRecord {
    this.seen++;
    const a = this.opts.smoothing ?? 0.1;
    if (this.seen > (this.opts.skip ?? 1)) this.ema = this.ema === null ? stepMs : (1 - a) * this.ema + a * stepMs;
    const ms = this.ema ?? stepMs; // skipped steps report their own time and do not enter the average
    const tokensPerS = ms > 0 ? this.opts.tokensPerStep / (ms / 1000) : 0;
    const achieved = this.opts.flopsPerToken * tokensPerS;
    if (this.peak && this.opts.peakMeasured && achieved > this.peak) {
      this.peak = achieved;
      this.observedPeak = achieved;
    }
    const peak = this.peak;
    return {
      step,
      max_steps: this.opts.maxSteps,
      loss,
      lr,
      ms_per_iter: ms,
      tokens_per_s: tokensPerS,
      mfu: peak ? achieved / peak : null,
      eta_s: (Math.max(0, this.opts.maxSteps - step - 1) * ms) / 1000,
    };
  }
}

/** "1h02m", "3m05s", "12s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** The progress line: `step 120/5000 | loss 2.3456 | lr 1.00e-3 | 245.1 ms/iter | 16,720 tok/s | MFU 12.30% | ETA 19m56s`. */
export function formatProgress(r: ProgressRecord): string {
  const stepWidth = String(r.max_steps).length;
  return [
    `step ${String(r.step).padStart(stepWidth)}/${r.max_steps}`,
    `loss ${r.loss.toFixed(4)}`,
    `lr ${r.lr.toExponential(2)}`,
    `${r.ms_per_iter.toFixed(1)} ms/iter`,
    `${Math.round(r.tokens_per_s).toLocaleString('en-US')} tok/s`,
    r.mfu === null ? 'MFU n/a' : `MFU ${(100 * r.mfu).toFixed(2)}%`,
    `ETA ${formatDuration(r.eta_s)}`,
  ].join(' | ');
}
