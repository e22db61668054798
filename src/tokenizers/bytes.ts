// Byte helpers for byte-level tokenizers: GPT-2's byte↔unicode table, UTF-8 encode/decode, base64, byte keys.
// Not a tokenizer: no vocabulary or merge logic lives here.

/** GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 upward. */
function buildByteToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let next = 256;
  for (let b = 0; b < 256; b++) table[b] = String.fromCharCode(printable(b) ? b : next++);
  return table;
}

export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((ch, b) => [ch, b]));

/** Token bytes → GPT-2 "unicode" token string (as in encoder.json / vocab.bpe). */
export function bytesToGpt2String(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += BYTE_TO_UNICODE[b];
  return out;
}

/** GPT-2 token string → bytes; returns null when a character is outside the byte table. */
export function gpt2StringToBytes(text: string): Uint8Array | null {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const b = UNICODE_TO_BYTE.get(text[i] as string);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const lenientDecoder = new TextDecoder('utf-8');

/** UTF-8 bytes of a string; lone surrogates become U+FFFD (what TextEncoder and tiktoken's wasm boundary do). */
export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8; invalid sequences become U+FFFD. */
export function utf8Decode(bytes: Uint8Array): string {
  return lenientDecoder.decode(bytes);
}

/** Decodes UTF-8 or returns null when the bytes are not valid UTF-8. */
export function utf8DecodeStrict(bytes: Uint8Array): string | null {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/** A string key that is unique per byte sequence (one char per byte), for Map lookups. */
export function bytesKey(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let out = '';
  for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i] as number);
  return out;
}

export function keyToBytes(key: string): Uint8Array {
  const out = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) out[i] = key.charCodeAt(i);
  return out;
}

export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function base64ToBytes(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  return new Uint8Array(Buffer.from(text, 'base64'));
}

export function bytesToBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

// Node 20 has String.prototype.isWellFormed/toWellFormed (ES2024); the project's lib setting is ES2023.
declare global {
  interface String {
    isWellFormed(): boolean;
    toWellFormed(): string;
  }
}

/** Replaces lone surrogates with U+FFFD (what UTF-8 encoding at tiktoken's wasm boundary does). */
export function wellFormed(text: string): string {
  return text.isWellFormed() ? text : text.toWellFormed();
}
