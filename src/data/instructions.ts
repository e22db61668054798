// Instruction data as training text: Alpaca-style records ({instruction, input, response | output}, a JSON array or
// JSON lines) and Self-Instruct seed tasks ({instruction, instances: [{input, output}]}) formatted with Alpaca's
// prompt ("### Instruction:", "### Input:", "### Response:"). For plain next-token fine-tuning (e.g. LoRA); not a
// chat template and not SFT's loss masking.
import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';

export interface InstructionExample {
  instruction: string;
  input: string;
  response: string;
}

/**
 * One example in Alpaca's prompt format, ending with a blank line. `mark` opens each header ('### ' as Alpaca; ''
 * for a vocabulary without '#', e.g. Tiny Shakespeare's, giving "Instruction:" / "Response:").
 */
export function formatInstruction(e: InstructionExample, mark = '### '): string {
  const input = e.input.trim() === '' ? '' : `${mark}Input:\n${e.input.trim()}\n\n`;
  return `${mark}Instruction:\n${e.instruction.trim()}\n\n${input}${mark}Response:\n${e.response.trim()}\n\n`;
}

function examplesOf(record: unknown, where: string): InstructionExample[] {
  const o = record as Record<string, unknown> | null;
  const str = (v: unknown, field: string): string => {
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') throw new UserError(`${where}: field ${field} must be a string, got ${JSON.stringify(v).slice(0, 40)}`);
    return v;
  };
  if (typeof o !== 'object' || o === null || typeof o.instruction !== 'string') throw new UserError(`${where}: expected an object with a string field instruction`);
  if (Array.isArray(o.instances)) {
    return o.instances.map((inst: unknown, i) => {
      const r = inst as Record<string, unknown> | null;
      return { instruction: o.instruction as string, input: str(r?.input, `instances[${i}].input`), response: str(r?.output, `instances[${i}].output`) };
    });
  }
  const response = o.response ?? o.output;
  if (typeof response !== 'string') throw new UserError(`${where}: expected a string field response (or output)`);
  return [{ instruction: o.instruction, input: str(o.input, 'input'), response }];
}

/** Reads one instruction file (.json: an array of records; .jsonl: one record a line). */
export function readInstructions(path: string): InstructionExample[] {
  if (!existsSync(path)) throw new UserError(`${path}: instruction file not found`);
  const text = readFileSync(path, 'utf8');
  const parse = (s: string, where: string): unknown => {
    try {
      return JSON.parse(s);
    } catch (e) {
      throw new UserError(`${where}: invalid JSON (${(e as Error).message})`);
    }
  };
  if (path.endsWith('.jsonl')) {
    return text.split('\n').flatMap((line, i) => (line.trim() === '' ? [] : examplesOf(parse(line, `${path}: line ${i + 1}`), `${path}: line ${i + 1}`)));
  }
  const all = parse(text, path);
  if (!Array.isArray(all)) throw new UserError(`${path}: expected a JSON array of instruction records (or a .jsonl file)`);
  return all.flatMap((r, i) => examplesOf(r, `${path}: record ${i}`));
}
