// The messages between the HTTP thread and the generation worker (worker.ts): plain structured-clone data, no
// functions. Sampling settings travel as numbers; the worker builds the logits processors.
import type { FinishReason } from './scheduler.js';

export interface SamplingParams {
  maxTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop: string[];
  /** Token ids that end the sequence (a chat model's end-of-turn token); the token is counted, its text not sent. */
  stopTokens?: number[];
  /** OpenAI's penalties on tokens already generated (0 = off). */
  frequencyPenalty?: number;
  presencePenalty?: number;
}

export type ToWorker =
  | { type: 'submit'; id: string; prompt: number[]; params: SamplingParams }
  | { type: 'cancel'; id: string }
  | { type: 'shutdown' };

/** What one step gave a sequence: new text (possibly ''), how many tokens, and the finish on its last event. */
export interface SequenceDelta {
  id: string;
  text: string;
  tokens: number;
  finish?: FinishReason;
}

export interface WorkerInfo {
  model: string;
  blockSize: number;
  vocabSize: number;
  parameters: number;
  slots: number;
}

export type FromWorker =
  | { type: 'ready'; info: WorkerInfo }
  | { type: 'deltas'; deltas: SequenceDelta[] }
  | { type: 'failed'; id: string; message: string }
  | { type: 'closed' };
