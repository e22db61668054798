// Lets a command module run on its own (`node dist/src/cli/tokenize.js ...`) before or beside src/cli/main.ts:
// builds a program with just that module's commands. Not the lmforge CLI entry point.
import { Command } from 'commander';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function runIfMain(moduleUrl: string, register: (program: Command) => void): void {
  const entry = process.argv[1];
  if (!entry) return;
  try {
    if (realpathSync(entry) !== realpathSync(fileURLToPath(moduleUrl))) return;
  } catch {
    return;
  }
  const program = new Command('lmforge');
  register(program);
  program.parseAsync(process.argv).catch((e: unknown) => {
    process.stderr.write(`lmforge: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
