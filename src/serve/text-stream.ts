// Incremental text of one generated sequence: turns the tokens chosen so far into the text that is safe to send
// now — never half a character (a subword token can end mid-UTF-8 sequence: the decoder then shows U+FFFD), never
// the start of what may become a stop string (held back until the next token decides), and nothing from the first
// stop string on, and nothing of a stop token (a chat model's end-of-turn). Not the stop decision itself
// (scheduler.ts stops the row).

export class TextStream {
  private readonly ids: number[] = [];
  private sent = '';
  private readonly hold: number;

  constructor(private readonly decode: (ids: readonly number[]) => string, private readonly stop: readonly string[] = [], private readonly stopTokens: readonly number[] = []) {
    this.hold = Math.max(0, ...stop.filter((s) => s !== '').map((s) => s.length - 1));
  }

  /** The whole text so far, cut before the first stop string. */
  get text(): string {
    return this.cut(this.decode(this.ids));
  }

  /** Adds a token; returns the text that became safe to send (often ''). */
  push(token: number): string {
    if (this.stopTokens.includes(token)) return ''; // the sequence ends here; the token has no text of its own
    this.ids.push(token);
    const full = this.decode(this.ids);
    const cut = this.cut(full);
    let upto: number;
    if (cut.length < full.length) upto = cut.length; // a stop string appeared: everything before it is final
    else if (cut.endsWith('\uFFFD')) upto = this.sent.length;
    else upto = Math.max(this.sent.length, cut.length - this.hold);
    return this.advance(cut, upto);
  }

  /** The rest at the end of the sequence. */
  finish(): string {
    const cut = this.text;
    return this.advance(cut, cut.length);
  }

  private advance(text: string, upto: number): string {
    // Earlier text never changes once sent: decoding more tokens only appends (a held U+FFFD is not sent).
    if (!text.startsWith(this.sent)) return '';
    const delta = text.slice(this.sent.length, upto);
    this.sent += delta;
    return delta;
  }

  private cut(text: string): string {
    let at = text.length;
    for (const s of this.stop) {
      if (s === '') continue;
      const k = text.indexOf(s);
      if (k >= 0 && k < at) at = k;
    }
    return text.slice(0, at);
  }
}
