// Token-level requests of multiple-choice tasks, written for the independent PyTorch scorer
// (test/reference/eval_reference.py): per item the untruncated context and each choice's continuation tokens,
// split as lm-eval splits them, the choice lengths in characters and the gold index. Truncation, the forward pass
// and the choice of answer are left to the scorer. Not used by the harness itself.
import { encodePair, type TextTokenizer } from './model.js';
import { buildInstances, type BuildOptions } from './tasks.js';
import type { TaskSpec } from './task-spec.js';

export interface RequestItem {
  task: string;
  where: string;
  context: number[];
  continuations: number[][];
  choice_chars: number[];
  gold: number;
  labels?: number[];
}

export function tokenRequests(spec: TaskSpec, tokenizer: TextTokenizer, options: Omit<BuildOptions, 'numFewshot'> & { numFewshot?: number }): RequestItem[] {
  const nShot = options.numFewshot ?? spec.default_fewshot ?? 0;
  const items: RequestItem[] = [];
  for (const inst of buildInstances(spec, { ...options, numFewshot: nShot })) {
    if (inst.kind !== 'mc') continue;
    const pairs = inst.continuations.map((c) => encodePair(tokenizer, inst.context, c));
    const item: RequestItem = {
      task: spec.task, where: inst.doc.where, context: pairs[0]!.context, continuations: pairs.map((p) => p.continuation),
      choice_chars: inst.choices.map((c) => c.length), gold: inst.gold,
    };
    if (inst.labels) item.labels = inst.labels;
    items.push(item);
  }
  return items;
}
