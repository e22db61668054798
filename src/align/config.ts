// The alignment config, one spec for every `lmforge align` stage: the loop's keys at the top, the data section,
// one section per stage (reward, dpo, ppo, cai) and the optimizer's. `lmforge align <stage> --help` prints it;
// configs/align/*.yaml are worked examples. A stage reads only the keys it uses.
import { optimSpec } from '../optim/config.js';
import { defineConfig, type ConfigOf } from '../util/config.js';

export const alignSpec = defineConfig({
  out_dir: { default: 'runs/align/sft', doc: 'run directory: model.safetensors + config.json, tokenizer, meta.json, metrics.jsonl, report.json' },
  init_from: { default: null, type: 'string', doc: 'model to start from: a run or model directory (for sft: the pretrained base, e.g. a Hugging Face GPT-2 directory; for reward/dpo/ppo: the SFT run)' },
  tokenizer: { default: null, type: 'string', doc: "tokenizer of init_from when it has no meta.json (a tokenizer file or a Hugging Face directory); default: the run's own" },
  seed: { default: 1337, type: 'integer', doc: 'seeds initialisation, sampling, shuffling and dropout' },
  threads: { default: 0, type: 'integer', min: 0, doc: 'native kernel threads (0 = all cores)' },
  max_iters: { default: 300, type: 'integer', min: 0, doc: 'optimizer steps (ppo: PPO iterations, each a batch of rollouts)' },
  gradient_accumulation_steps: { default: 1, type: 'integer', min: 1, doc: 'micro-batches per optimizer step' },
  grad_clip: { default: 1.0, type: 'number', min: 0, doc: 'clip the global gradient norm (0 = off)' },
  eval_interval: { default: 100, type: 'integer', min: 1, doc: 'evaluate every N steps (and at the end)' },
  log_interval: { default: 10, type: 'integer', min: 1, doc: 'progress line every N steps' },
  checkpoint_interval: { default: 0, type: 'integer', min: 0, doc: 'save a checkpoint every N steps (0 = only at the end)' },
  keep_checkpoints: { default: 1, type: 'integer', min: 1, doc: 'recent checkpoints kept' },
  data: {
    conversations: { default: '', doc: 'sft: comma-separated conversation files (messages / prompt-completion JSONL, instruction .json arrays, Self-Instruct, GSM8K, HH-RLHF: its chosen dialogues of the train part)' },
    preferences: { default: '', doc: 'reward/dpo: preference JSONL ({prompt, chosen, rejected} or HH-RLHF {chosen, rejected}); ppo/cai: its prompts. Every fifth record is held out from training (data/chat.ts isHeldOut)' },
    batch_size: { default: 8, type: 'integer', min: 1, doc: 'sequences (sft) or pairs (reward, dpo) per micro-batch' },
    packing: { default: true, doc: 'sft: pack rendered conversations into full block_size rows (no padding)' },
    val_fraction: { default: 0.02, type: 'number', min: 0, max: 0.5, doc: 'sft: fraction of the conversations kept for the validation loss' },
    max_reply_tokens: { default: 128, type: 'integer', min: 1, doc: 'reward/dpo: reply tokens kept (the prompt is cut from its left to fit block_size)' },
    eval_pairs: { default: 0, type: 'integer', min: 0, doc: 'held-out pairs evaluated (0 = all)' },
  },
  reward: {
    center_coef: { default: 0.01, type: 'number', min: 0, doc: "reward centering coefficient c·mean((r_c + r_r)²) (TRL's center_rewards_coefficient; 0 = off)" },
  },
  dpo: {
    beta: { default: 0.1, type: 'number', min: 0, doc: 'β: strength of the KL constraint to the reference' },
    loss_type: { default: 'sigmoid', choices: ['sigmoid', 'ipo'], doc: 'sigmoid (DPO) or ipo' },
    label_smoothing: { default: 0, type: 'number', min: 0, max: 0.5, doc: 'ε of label-smoothed (conservative) DPO; 0 = plain DPO' },
    reference: { default: null, type: 'string', doc: 'reference model (default: init_from)' },
  },
  sample: {
    max_new_tokens: { default: 64, type: 'integer', min: 1, doc: 'reply tokens generated per prompt (rollouts, KL estimates, CAI)' },
    temperature: { default: 1.0, type: 'number', min: 0, doc: 'sampling temperature (0 = greedy)' },
    top_k: { default: 0, type: 'integer', min: 0, doc: 'top-k (0 = all)' },
    eval_prompts: { default: 96, type: 'integer', min: 1, doc: 'held-out prompts for the KL to the reference, reward-model scores and win rates' },
  },
  ppo: {
    reward_model: { default: 'runs/align/reward', doc: 'reward model run (`lmforge align reward`)' },
    rollouts: { default: 16, type: 'integer', min: 1, doc: 'prompts per PPO iteration, generated as one batch' },
    ppo_epochs: { default: 2, type: 'integer', min: 1, doc: 'passes over each batch of rollouts' },
    mini_batch: { default: 8, type: 'integer', min: 1, doc: 'rollouts per PPO gradient step' },
    kl_coef: { default: 0.02, type: 'number', min: 0, doc: 'initial per-token KL penalty β (InstructGPT: 0.02)' },
    adaptive_kl: { default: true, doc: "Ziegler et al.'s adaptive controller: β·(1 + clip(KL/target − 1, ±0.2)·n/horizon)" },
    target_kl: { default: 6, type: 'number', min: 0, doc: 'adaptive controller: target KL per response (nats)' },
    horizon: { default: 10000, type: 'number', min: 1, doc: 'adaptive controller horizon (responses)' },
    gamma: { default: 1, type: 'number', min: 0, max: 1, doc: 'GAE discount' },
    lam: { default: 0.95, type: 'number', min: 0, max: 1, doc: 'GAE λ' },
    cliprange: { default: 0.2, type: 'number', min: 0, doc: 'policy ratio clip ε' },
    cliprange_value: { default: 0.2, type: 'number', min: 0, doc: 'value clip' },
    vf_coef: { default: 0.1, type: 'number', min: 0, doc: 'value loss weight' },
    ptx_coef: { default: 0, type: 'number', min: 0, doc: 'PPO-ptx: weight γ of the pretraining (SFT-data) loss mixed into each step (InstructGPT); 0 = off' },
    whiten_rewards: { default: false, doc: 'normalise scores over each batch before the KL penalty' },
  },
  cai: {
    constitution: { default: 'configs/align/constitution.yaml', doc: 'principles with critique and revision requests' },
    red_team_prompts: { default: 256, type: 'integer', min: 1, doc: 'red-team prompts (human first turns of the train part of data.preferences) for SL-CAI and RL-CAI' },
    revisions: { default: 2, type: 'integer', min: 1, doc: 'critique → revision rounds per response (each under a freshly sampled principle)' },
    sl_iters: { default: 100, type: 'integer', min: 0, doc: 'SFT steps on the final revisions (SL-CAI)' },
    pm_iters: { default: 100, type: 'integer', min: 0, doc: 'preference-model steps on the AI labels (RL-CAI)' },
    rl_iters: { default: 20, type: 'integer', min: 0, doc: 'PPO iterations against the preference model (RL-CAI)' },
    harmful_terms: { default: 'configs/align/harmful-terms.txt', doc: "word list of the harmful-content filter (data/harmful.ts) the report's harmful rate uses" },
    reward_model: { default: null, type: 'string', doc: 'reward model scoring harmlessness in the report (default: ppo.reward_model)' },
  },
  // LoRA (nn/lora.ts) for sft, dpo and ppo: only adapters (and, for sft, the token embedding that holds the new chat
  // tokens) train; the adapters are merged into the weights before the model is written.
  lora: {
    r: { default: 0, type: 'integer', min: 0, doc: 'LoRA rank (0 = train every parameter)' },
    alpha: { default: 16, type: 'number', min: 0, doc: 'lora_alpha: the update is scaled by alpha / r' },
    dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: "dropout on the adapters' input" },
    target_modules: { default: 'c_attn,c_fc,mlp.c_proj', doc: "Linear layers to adapt (PEFT's target_modules: path suffixes or /regex/)" },
  },
  optim: optimSpec,
});

export type AlignConfig = ConfigOf<typeof alignSpec>;
