// Stand-in for `lmforge curate ...` until src/cli/main.ts wires the command: node dev/run-curate.mjs curate --config FILE
import { Command } from 'commander';
import { register } from '../dist/src/cli/curate.js';

const program = new Command('lmforge');
register(program);
await program.parseAsync(process.argv);
