// A small wrapper over cli-progress for tokenizer commands: a bar on stderr when it is a terminal, else silence.
// Not a logger.
import cliProgress from 'cli-progress';

export interface Progress {
  update(value: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

export function progressBar(label: string, total: number, unit: string): Progress {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate} | ETA {eta_formatted}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { rate: '' });
  return { update: (v, payload) => bar.update(v, payload ?? {}), stop: () => bar.stop() };
}
