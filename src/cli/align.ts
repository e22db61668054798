// `lmforge align corpus|sft|reward|dpo|ppo|cai`: instruction tuning and alignment. Each subcommand reads a typed
// config (configs/align/*.yaml; --key=value overrides) and hands it to src/align/. Registered by src/cli/main.ts.
import type { Command } from 'commander';
import { alignSpec, type AlignConfig } from '../align/config.js';
import { runCai } from '../align/cai.js';
import { runDpo, runReward } from '../align/preference.js';
import { runPpo } from '../align/ppo.js';
import type { StageOptions } from '../align/run.js';
import { runSft } from '../align/sft.js';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { UserError } from '../util/errors.js';
import { addConfigOptions, configFromCommand } from './config-options.js';
import { readConversations, plainDialogue } from '../data/chat.js';
import { writeFileAtomic } from '../util/atomic.js';
import { mulberry32 } from '../util/mulberry32.js';

export function register(program: Command): void {
  const align = program.command('align').description('instruction tuning and alignment: SFT, reward model, DPO, PPO, Constitutional AI');
  align
    .command('corpus')
    .description("write the base model's pretraining text: conversations (HH-RLHF train part, instruction sets, GSM8K, messages JSONL) as plain \"Human:/Assistant:\" dialogues, shuffled")
    .requiredOption('--input <files...>', 'conversation files (.json instruction arrays, .jsonl/.jsonl.gz records)')
    .requiredOption('--out <file>', 'text file to write')
    .option('--seed <n>', 'shuffle seed', '1337')
    .action((o: { input: string[]; out: string; seed: string }) => {
      const convs = o.input.flatMap((f) => readConversations(f, 'train'));
      const rand = mulberry32(Number(o.seed));
      for (let i = convs.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [convs[i], convs[j]] = [convs[j]!, convs[i]!];
      }
      const text = convs.map((c) => plainDialogue(c)).join('');
      writeFileAtomic(o.out, text);
      console.log(`${convs.length} conversations, ${(text.length / 1e6).toFixed(2)} M characters → ${o.out}`);
    });
  const stage = (name: string, description: string, run: (c: AlignConfig, o: StageOptions) => unknown): void => {
    const cmd = align
      .command(name)
      .description(description)
      .option('--resume', 'continue from the newest complete checkpoint in out_dir')
      .option('--overwrite', 'replace a run already in out_dir');
    addConfigOptions(cmd, alignSpec).action(() => {
      useNativeBackendOrWarn();
      const config = configFromCommand(cmd, alignSpec);
      const { resume, overwrite } = cmd.opts<{ resume?: boolean; overwrite?: boolean }>();
      if (resume && overwrite) throw new UserError('--resume and --overwrite exclude each other');
      run(config, { resume: resume ?? false, overwrite: overwrite ?? false });
    });
  };
  stage('sft', 'supervised fine-tuning on conversations: chat tokens added, loss on assistant tokens only, packing', runSft);
  stage('reward', 'train a reward model (SFT model + scalar head, Bradley-Terry loss) on preference pairs; held-out accuracy with its 95% interval', runReward);
  stage('ppo', 'RLHF with PPO from the SFT model against a reward model: batched rollouts, per-token KL penalty with the adaptive controller, GAE, clipped losses, PPO-ptx', runPpo);
  stage('cai', 'Constitutional AI from one command: SL-CAI (critique and revision under sampled principles, SFT on revisions) then RL-CAI (AI-labelled pairs, preference model, PPO); every intermediate as JSONL', runCai);
  stage('dpo', 'direct preference optimization (sigmoid, IPO or label-smoothed) from the SFT model against its cached reference log-probabilities', runDpo);
}
