// worker_threads entry for the Parquet reader (readers.ts): decodes one file's row groups on request, so a corrupt
// file that sends the decoder into a near-endless loop or a huge allocation (a flipped count in a page header) is
// stopped by the parent's timeout or this thread's memory limit instead of hanging or killing the process.
// Not for direct use.
import { parentPort, workerData } from 'node:worker_threads';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from 'hyparquet';

/** Makes a Parquet value JSON-safe: INT64 (BigInt) as a number when exact else a string, dates as ISO strings. */
export function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  return v;
}

/** Worker → parent messages. */
export type ParquetMessage =
  | { type: 'meta'; groups: number[] }
  | { type: 'rows'; rows: unknown[] }
  | { type: 'error'; message: string };

async function serve(path: string): Promise<void> {
  const port = parentPort!;
  const post = (m: ParquetMessage): void => port.postMessage(m);
  const fail = (e: unknown): void => post({ type: 'error', message: e instanceof Error ? `${e.name === 'Error' ? '' : `${e.name}: `}${e.message}` : String(e) });
  let file: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (e) {
    fail(e);
    return;
  }
  const groups = metadata.row_groups.map((g) => Number(g.num_rows));
  post({ type: 'meta', groups });
  let g = 0;
  let rowStart = 0;
  port.on('message', () => {
    const rowEnd = rowStart + (groups[g] ?? 0);
    parquetReadObjects({ file, metadata, rowStart, rowEnd })
      .then((rows) => post({ type: 'rows', rows: rows.map(jsonSafe) }))
      .catch(fail);
    g++;
    rowStart = rowEnd;
  });
}

if (parentPort && (workerData as { parquetPath?: unknown } | null)?.parquetPath !== undefined) {
  void serve(String((workerData as { parquetPath: string }).parquetPath));
}
