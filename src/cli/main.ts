#!/usr/bin/env node
// The `lmforge` command line: builds the commander program from the command registry below, runs it, and turns a
// UserError (bad input the user can fix) into one clean line on stderr and exit status 1. Commands live one per file.
import { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { packageVersion } from './version.js';
import * as ablate from './ablate.js';
import * as alignCmd from './align.js';
import * as arena from './arena.js';
import * as compare from './compare.js';
import * as curate from './curate.js';
import * as dashboard from './dashboard.js';
import * as evalCmd from './eval.js';
import * as info from './info.js';
import * as inspect from './inspect.js';
import * as lora from './lora.js';
import * as lowrank from './lowrank.js';
import * as pipeline from './pipeline.js';
import * as prepare from './prepare.js';
import * as quantize from './quantize.js';
import * as registry from './registry.js';
import * as redteam from './redteam.js';
import * as retrieval from './retrieval.js';
import * as sample from './sample.js';
import * as serve from './serve.js';
import * as study from './study.js';
import * as tokenize from './tokenize.js';
import * as tokenizer from './tokenizer.js';
import * as train from './train.js';

interface CommandModule {
  register(program: Command): void;
}

// The command registry: each src/cli/<name>.ts exports `register(program)`. Add new commands here
// (align, serve, ... as they land).
const COMMANDS: CommandModule[] = [ablate, alignCmd, arena, compare, curate, dashboard, evalCmd, info, inspect, lora, lowrank, pipeline, prepare, quantize, redteam, registry, retrieval, tokenizer, tokenize, train, sample, serve, study];

function buildProgram(): Command {
  const program = new Command('lmforge')
    .description('Train, align and evaluate language models on the CPU.')
    .version(packageVersion(), '-V, --version', 'print the lmforge version')
    // Flag errors stay one line: the usage hint goes at its end, not on a line of its own.
    .configureOutput({ outputError: (text, write) => write(`${text.trimEnd().replace(/\s*\n\s*/g, ' ')} (run with --help for usage)\n`) })
    .configureHelp({ sortSubcommands: true });
  for (const c of COMMANDS) c.register(program);
  return program;
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof UserError) {
      process.stderr.write(`error: ${e.message}\n`);
    } else {
      process.stderr.write(`lmforge: internal error (please report it):\n${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    }
    process.exitCode = 1;
  }
}

await main();
