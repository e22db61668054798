// For benches that drive the lmforge CLI as child processes: one command's output, and a bounded job pool.
import { spawn } from 'node:child_process';
import { CLI, root } from './_char_base.js';

/** Runs `lmforge <args>` from the repository root: its stdout, or an error holding the tail of its output. */
export function lmforge(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`lmforge ${args.join(' ')}: exit ${code}\n${(err || out).trim().split('\n').slice(-6).join('\n')}`))));
  });
}

/** Runs the tasks `jobs` at a time, started in order; the results come back in the tasks' order. */
export async function pool<T>(tasks: (() => Promise<T>)[], jobs: number): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return out;
}
