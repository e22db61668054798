// Training data of the extractive reader: the XQuAD split by paragraph (the last paragraphs of every article are held
// out, so their questions and their text are never trained on), synthetic cloze questions drawn from passages (a
// sentence with a span replaced by a wh-word; the answer is the span, so the reader learns to find and copy), and the
// text layout shared with `lmforge eval --open-book` (eval/harness.ts's openBookContext + the xquad task's prompt).
// Not the trainer (reader-train.ts) nor the evaluation (reader-eval.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from '../util/mulberry32.js';
import { UserError } from '../util/errors.js';
import { readSquadPassages, readSquadQuestions, type Passage, type Question } from './corpus.js';

/** XQuAD has 5 paragraphs per article; paragraphs [HELD_OUT_FROM, …) of each article are held out. */
export const HELD_OUT_FROM = 3;

/** The paragraph index within its article of a SQuAD passage id "<article>-<paragraph>". */
export function paragraphIndex(passageId: string): number {
  const m = /^\d+-(\d+)$/.exec(passageId);
  if (!m) throw new UserError(`passage id ${JSON.stringify(passageId)}: expected "<article>-<paragraph>" (a SQuAD passage)`);
  return Number(m[1]);
}

export interface SquadSplit {
  trainPassages: Passage[];
  heldOutPassages: Passage[];
  train: Question[];
  heldOut: Question[];
}

/** Splits a SQuAD file by paragraph: paragraphs 0 … heldOutFrom−1 of every article train, the rest are held out. */
export function splitSquad(path: string, heldOutFrom = HELD_OUT_FROM): SquadSplit {
  const passages = readSquadPassages(path);
  const questions = readSquadQuestions(path);
  const held = (id: string): boolean => paragraphIndex(id) >= heldOutFrom;
  return {
    trainPassages: passages.filter((p) => !held(p.id)),
    heldOutPassages: passages.filter((p) => held(p.id)),
    train: questions.filter((q) => !held(q.passageId)),
    heldOut: questions.filter((q) => held(q.passageId)),
  };
}

/** The closed-book prompt: exactly configs/tasks/xquad.json's. */
export function closedBookPrompt(question: string): string {
  return `Question: ${question}\nAnswer:`;
}

/** The open-book prompt for one passage: the harness's openBookContext([passage], closed-book prompt). */
export function openBookPrompt(passage: { title?: string; text: string }, question: string): string {
  return `${passage.title ? `${passage.title}\n${passage.text}` : passage.text}\n\n${closedBookPrompt(question)}`;
}

/** What the reader is trained to produce after a prompt: " answer" and the newline that ends it. */
export function answerCompletion(answer: string): string {
  return ` ${answer.trim()}\n`;
}

/** A question and the answer the reader is trained to give. */
export interface QA {
  question: string;
  answer: string;
}

/**
 * A training row: a passage (or none: closed book) followed by one or more questions about it, laid out as
 * "passage\n\nQuestion: q1\nAnswer: a1\n\nQuestion: q2\nAnswer: a2\n". Its first question reads exactly like an
 * evaluation prompt; the later ones reuse the passage's tokens, so one forward pass trains several answers.
 */
export interface ReaderRow {
  passage: { title?: string; text: string } | null;
  qas: QA[];
  /** 'cloze' (synthetic), 'question' (real training questions with their passage), 'closed' (real ones without). */
  kind: 'cloze' | 'question' | 'closed';
}

/**
 * How a row lays out the passage and the question. 'passage-first': "passage\n\nQuestion: q\nAnswer: a". 'question-first':
 * "Question: q\n\npassage\n\nQuestion: q\nAnswer: a" — the question also comes before the passage, so in a causal
 * model every passage token can attend to it and mark the words that match (with the passage first, only the answer
 * position sees both). The closing "Question: q\nAnswer:" keeps the answer cue exactly the closed-book prompt.
 * 'question-echo': question first and the passage twice, "Question: q\n\npassage\n\npassage\n\nQuestion: q\nAnswer: a".
 * A causal token sees only what precedes it, so in one copy a word cannot see the words after it ("six" before
 * "Grammy Awards"); in the second copy it has seen the whole first copy, so the span head, which reads the second
 * copy, gets context on both sides (echo embeddings, Springer et al. 2024).
 */
export type ReaderLayout = 'passage-first' | 'question-first' | 'question-echo';

export const READER_LAYOUTS: readonly ReaderLayout[] = ['passage-first', 'question-first', 'question-echo'];

/**
 * The layout a reader directory was trained with, from the reader.json every save writes (passage-first when its
 * options name none); null without a reader.json.
 */
export function trainedLayout(dir: string): ReaderLayout | null {
  const path = join(dir, 'reader.json');
  if (!existsSync(path)) return null;
  let layout: unknown;
  try {
    layout = (JSON.parse(readFileSync(path, 'utf8')) as { options?: { layout?: unknown } }).options?.layout ?? 'passage-first';
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  if (!(READER_LAYOUTS as readonly unknown[]).includes(layout)) throw new UserError(`${path}: options.layout is ${JSON.stringify(layout)}, expected one of ${READER_LAYOUTS.join(', ')}`);
  return layout as ReaderLayout;
}

/** Whether the layout puts the question before the passage (one question a row; the span head can read the passage). */
export function questionLeads(layout: ReaderLayout): boolean {
  return layout !== 'passage-first';
}

/** The question-first lead of a prompt: the prompt without its last line (the "Answer:" cue), as the harness builds it. */
export function questionLead(prompt: string): string {
  const cut = prompt.lastIndexOf('\n');
  return cut > 0 ? prompt.slice(0, cut) : prompt;
}

/** A row as text segments: [prompt, completion] pairs after an unscored head (the passage with its separator). */
export function rowSegments(row: ReaderRow, layout: ReaderLayout = 'passage-first'): { head: string; pairs: [prompt: string, completion: string][] } {
  const passage = row.passage ? `${row.passage.title ? `${row.passage.title}\n${row.passage.text}` : row.passage.text}\n\n` : '';
  // Question first: one question per row (the passage tokens are conditioned on it, so they cannot serve a second).
  if (questionLeads(layout) && row.passage && row.qas.length > 0) {
    const qa = row.qas[0]!;
    return { head: `${questionLead(closedBookPrompt(qa.question))}\n\n${passage}${layout === 'question-echo' ? passage : ''}`, pairs: [[closedBookPrompt(qa.question), answerCompletion(qa.answer)]] };
  }
  const head = passage;
  // After an answer (which ends with "\n") one more newline gives the blank line between questions.
  return { head, pairs: row.qas.map((qa, i) => [`${i > 0 ? '\n' : ''}${closedBookPrompt(qa.question)}`, answerCompletion(qa.answer)]) };
}

function shuffled<T>(xs: readonly T[], random: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Sentences of a passage: split after . ! ? followed by white space and a capital, digit or quote. */
export function sentences(text: string): string[] {
  return text.split(/(?<=[.!?])\s+(?=[A-Z0-9"“(])/).map((s) => s.trim()).filter((s) => s.length > 0);
}

/**
 * Passages cut into windows of whole sentences of at most maxWords words (DPR-style chunking: a short passage is
 * cheaper to read and easier to copy from); a longer sentence is a window of its own. Window i of passage p has the
 * id "p#i" and p's title.
 */
export function windowPassages(passages: readonly Passage[], maxWords: number): Passage[] {
  const out: Passage[] = [];
  for (const p of passages) {
    let current: string[] = [];
    let words = 0;
    let i = 0;
    const flush = (): void => {
      if (current.length === 0) return;
      out.push({ id: `${p.id}#${i++}`, text: current.join(' '), ...(p.title ? { title: p.title } : {}) });
      current = [];
      words = 0;
    };
    for (const s of sentences(p.text)) {
      const n = s.split(/\s+/).length;
      if (words > 0 && words + n > maxWords) flush();
      current.push(s);
      words += n;
    }
    flush();
  }
  return out;
}

/** Each question moved to the first window of its passage that holds its first answer (questions with none dropped). */
export function questionsOnWindows(questions: readonly Question[], windows: readonly Passage[]): Question[] {
  const byPassage = new Map<string, Passage[]>();
  for (const w of windows) {
    const pid = w.id.slice(0, w.id.lastIndexOf('#'));
    byPassage.set(pid, [...(byPassage.get(pid) ?? []), w]);
  }
  const out: Question[] = [];
  for (const q of questions) {
    const answer = q.answers[0];
    const w = answer === undefined ? undefined : byPassage.get(q.passageId)?.find((x) => x.text.includes(answer));
    if (w) out.push({ ...q, passageId: w.id });
  }
  return out;
}

const STOP = new Set('a an the of in on at to for from by with and or but as is was were are be been that this which who whom its it their his her he she they than then also not no into over under after before during'.split(' '));

interface Span {
  start: number;
  end: number;
  wh: string;
}

/** Strips punctuation around a word (the span keeps only the word). */
function core(w: string): string {
  return w.replace(/^[("“'"]+|[)"”'".,;:!?]+$/g, '');
}

/**
 * Answer-like spans of a sentence's words, each with the wh-word that asks for it: a year ("when"), another number
 * ("how many"), a run of capitalised words not at the sentence start ("what"; "of"/"the" may join two), or else a
 * content word ("what").
 */
export function candidateSpans(words: readonly string[]): Span[] {
  const out: Span[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = core(words[i]!);
    if (/^(1[0-9]{3}|20[0-9]{2})$/.test(w)) out.push({ start: i, end: i + 1, wh: 'when' });
    else if (/^\d[\d,.]*%?$/.test(w)) out.push({ start: i, end: i + 1, wh: 'how many' });
  }
  for (let i = 1; i < words.length; i++) {
    if (!/^[A-Z]/.test(core(words[i]!))) continue;
    let j = i + 1;
    while (j < words.length && j - i < 5) {
      const w = core(words[j]!);
      if (/^[A-Z]/.test(w)) j++;
      else if ((w === 'of' || w === 'the') && j + 1 < words.length && /^[A-Z]/.test(core(words[j + 1]!))) j += 2;
      else break;
      if (/[.,;:!?)]$/.test(words[j - 1]!)) break;
    }
    out.push({ start: i, end: j, wh: 'what' });
    i = j - 1;
  }
  if (out.length === 0) {
    for (let i = 1; i < words.length; i++) {
      const w = core(words[i]!).toLowerCase();
      if (w.length > 3 && !STOP.has(w)) out.push({ start: i, end: i + 1, wh: 'what' });
    }
  }
  return out;
}

/** One cloze question from a sentence: the span's words replaced by its wh-word, ending with "?". */
export function clozeOf(sentence: string, random: () => number): { question: string; answer: string } | null {
  const words = sentence.split(/\s+/).filter((w) => w !== '');
  if (words.length < 5) return null;
  const spans = candidateSpans(words);
  if (spans.length === 0) return null;
  const s = spans[Math.floor(random() * spans.length)]!;
  const answer = words.slice(s.start, s.end).join(' ').replace(/^[("“']+/, '').replace(/[)"”'.,;:!?]+$/, '');
  if (answer === '') return null;
  const trailing = /[,;:]$/.test(words[s.end - 1]!) ? words[s.end - 1]!.slice(-1) : '';
  const question = [...words.slice(0, s.start), s.wh + trailing, ...words.slice(s.end)].join(' ').replace(/[.!?]+$/, '') + '?';
  return { question, answer };
}

/** Runs of 1–3 lowercase content words (not stop words), each a "what" span: the noun phrases real answers often are. */
function contentSpans(words: readonly string[]): Span[] {
  const content = (i: number): boolean => {
    const w = core(words[i]!);
    // Verb forms (-ed, -ing) and adverbs (-ly) are rarely what a question asks for.
    return /^[a-z][a-z-]{3,}$/.test(w) && !STOP.has(w) && !/(ed|ing|ly)$/.test(w);
  };
  const out: Span[] = [];
  for (let i = 1; i < words.length; i++) {
    if (!content(i)) continue;
    let j = i + 1;
    while (j < words.length && j - i < 3 && content(j) && !/[.,;:!?)]$/.test(words[j - 1]!)) j++;
    out.push({ start: i, end: j, wh: 'what' });
    i = j - 1;
  }
  return out;
}

/** The wh-phrase that asks for a span, by its shape and the word before it (seeded choice among the usual ones). */
function whPhrase(s: Span, words: readonly string[], random: () => number): string {
  const pick = (xs: readonly string[]): string => xs[Math.floor(random() * xs.length)]!;
  const before = s.start > 0 ? core(words[s.start - 1]!).toLowerCase() : '';
  if (s.wh === 'when') return pick(['When', 'In what year', 'What year']);
  if (s.wh === 'how many') return /%$/.test(core(words[s.start]!)) ? 'What percentage' : pick(['How many', 'How much', 'What number']);
  const capitalised = /^[A-Z]/.test(core(words[s.start]!));
  if (capitalised && ['in', 'at', 'from', 'to', 'near'].includes(before)) return pick(['Where', 'In what place', 'What']);
  if (capitalised && before !== 'the') return pick(['Who', 'What', 'Which']);
  return pick(['What', 'What', 'Which']);
}

/**
 * A synthetic question that reads like a real one: the wh-phrase first, then the words around the span (up to
 * `reach` either side, the span left out, punctuation dropped, each kept with probability 1 − dropout), then "?".
 * "In 2011, Gaga won six Grammy Awards." → "How many In 2011 Gaga won Grammy Awards?" (answer "six"). Real questions
 * share most content words with the sentence that answers them but move the wh-word to the front; a reader that
 * learns to match these learns to match theirs. null for sentences under 5 words or without a span.
 */
export function whQuestionOf(sentence: string, random: () => number, reach = 10, dropout = 0.15): QA | null {
  const words = sentence.split(/\s+/).filter((w) => w !== '');
  if (words.length < 5) return null;
  const spans = [...candidateSpans(words), ...contentSpans(words)];
  if (spans.length === 0) return null;
  const s = spans[Math.floor(random() * spans.length)]!;
  const answer = words.slice(s.start, s.end).join(' ').replace(/^[("“']+/, '').replace(/[)"”'.,;:!?]+$/, '');
  if (answer === '') return null;
  const around = [...words.slice(Math.max(0, s.start - reach), s.start), ...words.slice(s.end, s.end + reach)].map(core).filter((w) => w !== '');
  const kept = around.filter(() => random() >= dropout);
  if (kept.length < 2) return null;
  return { question: `${whPhrase(s, words, random)} ${kept.join(' ')}?`, answer };
}

/**
 * Question-first rows: one synthetic question per row, perPassage of them per passage from distinct sentences where
 * it has enough; each is a wh-question (whQuestionOf) or, for a clozeShare of them, an in-place cloze (clozeOf).
 */
export function whRows(passages: readonly Passage[], perPassage: number, clozeShare: number, seed: number): ReaderRow[] {
  const random = mulberry32(seed);
  const out: ReaderRow[] = [];
  for (const p of passages) {
    const ss = shuffled(sentences(p.text), random);
    for (let n = 0; n < perPassage && ss.length > 0; n++) {
      const s = ss[n % ss.length]!;
      const qa = random() < clozeShare ? clozeOf(s, random) : whQuestionOf(s, random);
      if (qa) out.push({ passage: p, qas: [qa], kind: 'cloze' });
    }
  }
  return out;
}

/** One row per passage with up to perPassage cloze questions, from distinct sentences where it has enough (seeded). */
export function clozeRows(passages: readonly Passage[], perPassage: number, seed: number): ReaderRow[] {
  const random = mulberry32(seed);
  const out: ReaderRow[] = [];
  for (const p of passages) {
    const ss = shuffled(sentences(p.text), random);
    const qas: QA[] = [];
    for (let n = 0; n < perPassage && ss.length > 0; n++) {
      const c = clozeOf(ss[n % ss.length]!, random);
      if (c) qas.push(c);
    }
    if (qas.length > 0) out.push({ passage: p, qas, kind: 'cloze' });
  }
  return out;
}

/**
 * The real training questions: one row per paragraph with its questions in a seeded order (open book), and rows of
 * closedPerRow questions without a passage for a `closedShare` of them (closed book).
 */
export function questionRows(questions: readonly Question[], passages: readonly Passage[], closedShare: number, closedPerRow: number, seed: number, onePerRow = false): ReaderRow[] {
  const random = mulberry32(seed);
  const byPassage = new Map<string, QA[]>();
  const closed: QA[] = [];
  for (const q of shuffled(questions, random)) {
    const answer = q.answers[0];
    if (answer === undefined) continue;
    const qa = { question: q.question, answer };
    byPassage.set(q.passageId, [...(byPassage.get(q.passageId) ?? []), qa]);
    if (random() < closedShare) closed.push(qa);
  }
  const out: ReaderRow[] = [];
  for (const p of passages) {
    const qas = byPassage.get(p.id);
    if (!qas) continue;
    // One question a row when the layout puts the question first (rowSegments reads only the first).
    if (onePerRow) for (const qa of qas) out.push({ passage: p, qas: [qa], kind: 'question' });
    else out.push({ passage: p, qas, kind: 'question' });
  }
  for (let i = 0; i < closed.length; i += closedPerRow) out.push({ passage: null, qas: closed.slice(i, i + closedPerRow), kind: 'closed' });
  return out;
}
