// Wiring between commander and util/config.ts for commands driven by a typed config (train, sample, ...):
// `--config <file>` plus any number of `--key=value` overrides, and the spec's keys listed under --help.
// Such commands take no positional arguments (a stray word is reported as a malformed override).
import type { Command } from 'commander';
import { configHelp, loadConfig, type Aliases, type ConfigOf, type ConfigSpec } from '../util/config.js';

/** Adds `--config <path>`, accepts `--key=value` overrides, and appends the config keys to the command's help. */
export function addConfigOptions(cmd: Command, spec: ConfigSpec, aliases: Aliases = {}): Command {
  const names = Object.entries(aliases).map(([flat, key]) => `${flat} → ${key}`);
  const aliasHelp = names.length ? `\nFlat names (nanoGPT style) read as the sectioned keys:\n  ${names.join(', ')}\n` : '';
  return cmd
    .option('--config <path>', 'config file (JSON or YAML) applied over the defaults')
    .allowUnknownOption()
    .allowExcessArguments()
    .addHelpText('after', `\nConfig keys (defaults → --config file → --key=value flags):\n${configHelp(spec)}\n${aliasHelp}`);
}

/** The command's resolved config: defaults → --config file → `--key=value` flags. Throws UserError on bad input. */
export function configFromCommand<S extends ConfigSpec>(cmd: Command, spec: S, aliases: Aliases = {}): ConfigOf<S> {
  const { config } = cmd.opts<{ config?: string }>();
  return loadConfig(spec, config, cmd.args, aliases);
}
