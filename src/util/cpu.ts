// The CPU that figures are taken on, as benchmarks and studies name it beside them: model name, family and model
// number from /proc/cpuinfo (what `lscpu` prints) and the core count, since the same run gives different ratios on
// different CPUs.
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export function cpuName(): string {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (k: string): string | undefined => new RegExp(`^${k}\\s*:\\s*(.*)$`, 'm').exec(info)?.[1]?.trim();
    return `${field('model name') ?? cpus()[0]?.model ?? 'unknown'} (family ${field('cpu family') ?? '?'}, model ${field('model') ?? '?'}), ${cpus().length} cores`;
  } catch {
    return `${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} cores`;
  }
}
