// Lets a command module run on its own (`node dist/src/cli/tokenize.js ...`) before or beside src/cli/main.ts:
// builds a program with just that module's commands. Not the lmforge CLI entry point.
import { Command } from 'commander';
import { UserError } from '../util/errors.js';
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
    process.stderr.write(`${e instanceof UserError ? 'error' : 'lmforge: internal error'}: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}

/**
 * Runs a command action, turning the plain Errors the tokenizer layer throws for bad input (they name the file, line
 * or field) into UserError, so the CLI prints one line instead of a stack. TypeError and the like stay bugs.
 */
export async function userErrors<T>(action: () => T | Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (e) {
    if (e instanceof Error && e.constructor === Error) throw new UserError(e.message, { cause: e });
    throw e;
  }
}
