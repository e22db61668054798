// Cleaning transform: Unicode normalisation, whitespace and control-character fixes, boilerplate line removal.
// It rewrites text; it never drops a document (filters do that).
import type { Document, DocumentTransform } from './document.js';

export interface CleanConfig {
  /** Unicode normal form applied first (NFC keeps compatibility characters; NFKC folds them). */
  normalization: 'NFC' | 'NFKC' | 'none';
  /** Drop C0/C1 control characters (tab and newline are kept), zero-width characters and the BOM. */
  removeControl: boolean;
  /** Collapse runs of spaces/tabs, trim line ends, collapse 3+ newlines into one blank line. */
  fixWhitespace: boolean;
  /** Lines that match one of these (case-insensitive) and are short are removed as boilerplate. */
  boilerplatePatterns: string[];
  /** Only lines with at most this many words can be boilerplate (long lines are content that mentions it). */
  boilerplateMaxWords: number;
}

export const DEFAULT_CLEAN: CleanConfig = {
  normalization: 'NFC',
  removeControl: true,
  fixWhitespace: true,
  boilerplatePatterns: [
    'cookie',
    'all rights reserved',
    'privacy policy',
    'terms of (use|service)',
    'javascript',
    'sign up for (our|the) newsletter',
    'subscribe( now| to)',
    'click here',
    'share (this|on)',
    '^(home|menu|search|login|log in|sign in|skip to (main )?content)$',
    'copyright ©|© ?\\d{4}',
  ],
  boilerplateMaxWords: 15,
};

// C0 except \t \n, DEL, C1, zero-width space/joiners, word joiner, BOM, soft hyphen.
// eslint-disable-next-line no-control-regex -- stripping control characters is the point
const CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200d\u2060\ufeff\u00ad]/g;
const SPACES_RE = /[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+/g;

export class Cleaner implements DocumentTransform {
  readonly name = 'clean';
  private readonly boilerplate: RegExp | undefined;
  /** Lines removed as boilerplate since construction (for the report). */
  removedLines = 0;

  constructor(private readonly config: CleanConfig = DEFAULT_CLEAN) {
    const pats = config.boilerplatePatterns;
    this.boilerplate = pats.length > 0 ? new RegExp(pats.map((p) => `(?:${p})`).join('|'), 'i') : undefined;
  }

  cleanText(input: string): string {
    let t = input.replace(/\r\n?/g, '\n');
    if (this.config.normalization !== 'none') t = t.normalize(this.config.normalization);
    if (this.config.removeControl) t = t.replace(CONTROL_RE, '');
    if (this.config.fixWhitespace) {
      t = t
        .split('\n')
        .map((l) => l.replace(SPACES_RE, ' ').trim())
        .join('\n')
        .replace(/\n{3,}/g, '\n\n');
    }
    if (this.boilerplate !== undefined) {
      const re = this.boilerplate;
      const maxWords = this.config.boilerplateMaxWords;
      const lines = t.split('\n');
      const kept = lines.filter((l) => {
        const trimmed = l.trim();
        if (trimmed === '' || !re.test(trimmed)) return true;
        return trimmed.split(/\s+/).length > maxWords;
      });
      this.removedLines += lines.length - kept.length;
      if (kept.length !== lines.length) t = kept.join('\n').replace(/\n{3,}/g, '\n\n');
    }
    return t.trim();
  }

  apply(doc: Document): Document {
    const text = this.cleanText(doc.text);
    return text === doc.text ? doc : { ...doc, text };
  }
}
