// User feedback on served responses (thumbs up/down, a comment, the response id and what was asked and answered),
// behind a small interface so that the registry can take it over; for now one JSONL file in the server's state
// directory (`--state-dir`, default ./.lmforge): <state-dir>/feedback.jsonl, one record a line, appended.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface FeedbackRecord {
  /** The feedback's own id. */
  id: string;
  /** The chat.completion / text_completion id it is about. */
  response_id: string;
  rating: 'up' | 'down';
  comment: string;
  model: string;
  /** ISO time the feedback arrived. */
  created: string;
  /** The prompt and answer, when this server process served the response (else absent). */
  prompt?: string;
  completion?: string;
}

export interface FeedbackStore {
  add(record: FeedbackRecord): void;
  /** Where records go, for the startup banner. */
  readonly location: string;
}

export const FEEDBACK_FILE = 'feedback.jsonl';

/** Appends each record as one line in one O_APPEND write, so concurrent servers sharing the file do not interleave lines. */
export class JsonlFeedbackStore implements FeedbackStore {
  constructor(readonly location: string) {
    mkdirSync(dirname(location), { recursive: true });
  }

  add(record: FeedbackRecord): void {
    appendFileSync(this.location, JSON.stringify(record) + '\n');
  }
}
