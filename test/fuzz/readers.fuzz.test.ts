// Fuzzes the curation readers (JSONL, JSONL.gz, CSV, Parquet, text) on mutated files, and the UTF-8 scanner and
// streaming decoder behind the invalid-UTF-8 policy against the platform's TextDecoder. A reader must yield
// documents or refuse with a UserError (bad records are counted, not thrown, under on_bad_record: skip).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUtf8 } from 'node:buffer';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { BadRecordLog, PARQUET_LIMITS, formatFromPath, readDocuments } from '../../src/data/readers.js';
import type { ReadSpec } from '../../src/data/readers.js';
import { Utf8LineDecoder, invalidUtf8Offset } from '../../src/util/utf8.js';
import { fuzz, fuzzAsync, mutatedBytes, report } from './harness.js';

const tmp = mkdtempSync(join(tmpdir(), 'lmf-fuzz-read-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

async function readAll(path: string, extra: Partial<ReadSpec> = {}): Promise<number> {
  const spec: ReadSpec = { path, format: formatFromPath(path), source: 's', textField: 'text', idField: 'id', split: 'paragraph', onBadRecord: 'skip', ...extra };
  let n = 0;
  for await (const d of readDocuments(spec, new BadRecordLog())) n += d.text.length >= 0 ? 1 : 0;
  return n;
}

const jsonl = Buffer.from(
  ['{"id":1,"text":"héllo wörld","tags":["a","b"]}', '{"id":"x2","text":"line two","n":null}', '{"text":"ünïcode ✓ 𝄞","meta":{"k":1.5}}', '{"id":3,"text":""}'].join('\n') + '\n',
);
const csv = Buffer.from('text,id,score\n"multi\nline, with ""quotes""",1,0.5\nplain,2,\n"ü ✓",3,1e3\n');
const txt = Buffer.from('First paragraph\nstill first.\n\nSecond ✓ paragraph.\r\n\r\nThird.\n');

test('fuzz: JSONL, JSONL.gz, CSV and text readers on mutated files', async () => {
  let n = 0;
  const file = (ext: string, b: Uint8Array): string => {
    const p = join(tmp, `f${n++ % 16}${ext}`);
    writeFileSync(p, b);
    return p;
  };
  for (const policy of ['error', 'replace', 'skip'] as const) {
    report(`jsonl (${policy})`, await fuzzAsync(mutatedBytes([jsonl]), 300, (b) => readAll(file('.jsonl', b), { invalidUtf8: policy })));
  }
  report('csv', await fuzzAsync(mutatedBytes([csv]), 400, (b) => readAll(file('.csv', b))));
  report('txt', await fuzzAsync(mutatedBytes([txt]), 300, (b) => readAll(file('.txt', b))));
  const gz = Uint8Array.from(gzipSync(jsonl));
  report('jsonl.gz (compressed bytes)', await fuzzAsync(mutatedBytes([gz]), 400, (b) => readAll(file('.jsonl.gz', b))));
  report('jsonl.gz (mutated contents)', await fuzzAsync(mutatedBytes([jsonl]), 200, (b) => readAll(file('.jsonl.gz', gzipSync(b)))));
});

test('fuzz: Parquet reader on truncated, flipped and spliced files', async () => {
  const texts = Array.from({ length: 300 }, (_, i) => `document ${i} ✓`);
  const seed = new Uint8Array(
    parquetWriteBuffer({
      columnData: [
        { name: 'text', data: texts, type: 'STRING' },
        { name: 'id', data: texts.map((_, i) => i), type: 'INT32' },
      ],
      rowGroupSize: 100,
    }),
  );
  // A corrupt page header can make the decoder spin or allocate without end: the reader's per-row-group bounds stop
  // it; tightened here so such cases cost a second, not two minutes.
  Object.assign(PARQUET_LIMITS, { timeoutMs: 1000, memoryMb: 256 });
  let n = 0;
  report('parquet', await fuzzAsync(mutatedBytes([seed], 256), 80, (b) => {
    const p = join(tmp, `p${n++ % 16}.parquet`);
    writeFileSync(p, b);
    return readAll(p);
  }));
});

test('fuzz: the UTF-8 scanner agrees with the platform decoder; chunked decoding equals whole decoding', () => {
  const seeds = [Uint8Array.from(Buffer.from('plain ascii\nünïcode ✓ 𝄞 text\n')), Uint8Array.from([0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf, 0xe0, 0x80, 0xaf])];
  report('utf8 scanner', fuzz(mutatedBytes(seeds, 64), 20000, (b) => {
    const off = invalidUtf8Offset(b);
    assert.equal(off === -1, isUtf8(b), 'valid iff no offset');
    if (off >= 0) {
      assert.ok(isUtf8(b.subarray(0, off)), 'everything before the offset is valid');
      assert.ok(!isUtf8(b.subarray(0, Math.min(b.length, off + 4))), 'the offset starts an invalid sequence');
    }
  }));
  const arb = fc.tuple(mutatedBytes(seeds, 64), fc.array(fc.nat(), { maxLength: 6 }), fc.constantFrom('replace' as const, 'skip' as const));
  report('utf8 streaming decoder', fuzz(arb, 2000, ([b, cuts, policy]) => {
    const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
    const d = new Utf8LineDecoder('f', policy);
    let out = '';
    let prev = 0;
    for (const p of [...points, b.length]) {
      out += d.push(b.subarray(prev, p));
      prev = p;
    }
    out += d.end();
    const whole = new Utf8LineDecoder('f', policy);
    assert.equal(out, whole.push(b) + whole.end(), 'chunking does not change the text');
    if (policy === 'replace') assert.equal(out, new TextDecoder().decode(b));
  }));
});
