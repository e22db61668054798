// Test helper: writes a token file in the layout token-reader.ts reads. Lives in test/, not src/: the one real
// writer is src/tokenizers/token-file.ts (tokenizer engineer); replace this by it once that is on main.
import { writeFileSync } from 'node:fs';
import { TOKEN_FILE_HEADER_BYTES, TOKEN_FILE_MAGIC, TOKEN_FILE_VERSION } from '../../src/train/token-reader.js';

export function writeTokenFile(path: string, ids: ArrayLike<number>, vocabSize: number): void {
  const wide = vocabSize > 65536;
  const bytes = wide ? 4 : 2;
  const buf = Buffer.alloc(TOKEN_FILE_HEADER_BYTES + ids.length * bytes);
  buf.write(TOKEN_FILE_MAGIC, 0, 'latin1');
  buf.writeUInt32LE(TOKEN_FILE_VERSION, 8);
  buf.writeUInt32LE(wide ? 2 : 1, 12);
  buf.writeBigUInt64LE(BigInt(ids.length), 16);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(id >= 0 && id < vocabSize)) throw new Error(`writeTokenFile: id ${id} at ${i} outside [0, ${vocabSize})`);
    if (wide) buf.writeUInt32LE(id, TOKEN_FILE_HEADER_BYTES + 4 * i);
    else buf.writeUInt16LE(id, TOKEN_FILE_HEADER_BYTES + 2 * i);
  }
  writeFileSync(path, buf);
}
