// Applies perturbations (perturb.ts) to a task's inputs, never its answers: which fields of a row are inputs for
// each task type, and the row transform the harness runs on every scored row (few-shot examples stay clean, as in
// CheckList, so the test measures the item, not a corrupted demonstration). Not the perturbations themselves.
import { UserError } from '../util/errors.js';
import { distractor, perturbText, textRandom, type Perturbation } from './perturb.js';
import { lookup, type Doc, type TaskSpec } from './task-spec.js';

/** Field paths a template reads ("{{question|strip}}" → "question"). */
export function templateFields(template: string): string[] {
  const out: string[] = [];
  for (const m of template.matchAll(/\{\{\s*([^}|\s]+)/g)) if (!out.includes(m[1]!)) out.push(m[1]!);
  return out;
}

/** Fields of a template's answer side: gold, choices, targets and generation answers are never perturbed. */
function answerFields(spec: TaskSpec): Set<string> {
  const out = new Set<string>();
  if (spec.gold) out.add('field' in spec.gold ? spec.gold.field : spec.gold.labels_of);
  if (spec.choices && 'field' in spec.choices) out.add(spec.choices.field);
  if (spec.choices && 'keys_of' in spec.choices) out.add(spec.choices.keys_of);
  for (const t of [spec.target, spec.generation?.answers]) if (t !== undefined) for (const f of templateFields(t)) out.add(f);
  return out;
}

/** The input fields of a task's rows, in prompt order. */
export function inputFields(spec: TaskSpec): string[] {
  switch (spec.type) {
    case 'perplexity':
      return ['text'];
    case 'pair_preference':
      return [spec.pair!.more, spec.pair!.less];
    case 'multiple_choice':
    case 'generate_until': {
      const answers = answerFields(spec);
      const fields = templateFields(spec.prompt ?? '').filter((f) => !answers.has(f) && f !== 'subset');
      if (fields.length === 0) throw new UserError(`task ${spec.task}: its prompt reads no input field to perturb`);
      return fields;
    }
    case 'code_exec':
    case 'bits_per_byte':
      throw new UserError(`--perturb: task ${spec.task} is ${spec.type}; perturbations apply to multiple_choice, generate_until, pair_preference and perplexity tasks`);
  }
}

function setPath(fields: Record<string, unknown>, path: string, value: string): Record<string, unknown> {
  const [head, ...rest] = path.split('.');
  const copy: Record<string, unknown> | unknown[] = Array.isArray(fields) ? [...(fields as unknown[])] : { ...fields };
  const inner = (copy as Record<string, unknown>)[head!];
  (copy as Record<string, unknown>)[head!] = rest.length === 0 ? value : setPath(inner as Record<string, unknown>, rest.join('.'), value);
  return copy as Record<string, unknown>;
}

/**
 * The row transform of a perturbed run: every string input field gets the character-level perturbations; a
 * distractor sentence goes after the longest input field only (the passage when there is one), so a prompt gains
 * at most one — except in sentence-pair tasks, where both sentences get the same one. Deterministic for (seed, row).
 */
export function docPerturber(spec: TaskSpec, perturbations: readonly Perturbation[], seed: number): (doc: Doc) => Doc {
  const fields = inputFields(spec);
  const local = perturbations.filter((p) => p.kind !== 'distractor');
  const appended = perturbations.filter((p) => p.kind === 'distractor');
  if (spec.type === 'pair_preference') {
    // A minimal pair must stay a pair: both sentences get the same distractor (or none), chosen from the first one.
    return (doc) => {
      const values = fields.map((f) => lookup(doc, f));
      const first = typeof values[0] === 'string' ? values[0] : '';
      const suffix = appended.reduce((t, p) => distractor(t, p.rate, textRandom(seed, 'distractor', first)), '');
      let out = doc.fields;
      values.forEach((v, i) => {
        if (typeof v === 'string') out = setPath(out, fields[i]!, perturbText(v, local, seed, fields[i]) + (suffix === '' ? '' : ` ${suffix}`));
      });
      return { ...doc, fields: out };
    };
  }
  return (doc) => {
    const values = fields.map((f) => lookup(doc, f));
    let longest = -1;
    values.forEach((v, i) => {
      if (typeof v === 'string' && (longest < 0 || v.length > (values[longest] as string).length)) longest = i;
    });
    let out = doc.fields;
    values.forEach((v, i) => {
      if (typeof v !== 'string') return;
      const wanted = i === longest ? [...local, ...appended] : local;
      out = setPath(out, fields[i]!, perturbText(v, wanted, seed, fields[i]));
    });
    return { ...doc, fields: out };
  };
}
