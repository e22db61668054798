// The document model shared by every curation stage: text plus free-form metadata, and where it came from.
// It is not a reader or a filter; those live in readers.ts and the filter files.

/**
 * Fields the pipeline adds to every record it writes, named so they cannot clash with a user's own fields (a
 * record's `id` or `source` is kept untouched): the pipeline's id of the document and the name of its source.
 */
export const PIPELINE_ID_FIELD = 'lmforge_id';
export const PIPELINE_SOURCE_FIELD = 'lmforge_source';

/** The config source a document came from (written as `lmforge_source`; shards of older versions used `source`). */
export function sourceOf(doc: Document): string {
  return String(doc.metadata[PIPELINE_SOURCE_FIELD] ?? doc.metadata.source ?? 'default');
}

/** One unit of text moving through the pipeline. `metadata` keeps every non-text field of the input record. */
export interface Document {
  /**
   * The pipeline's stable id (written as `lmforge_id`): the input's id_field when configured, else the provenance
   * `<source>/<file>:<line or row>`. Never written over the record's own `id` field, which stays in metadata.
   */
  id: string;
  text: string;
  metadata: Record<string, unknown>;
}

/** Why a document left the pipeline: the stage and rule that removed it, with the measured value. */
export interface Exclusion {
  stage: string;
  filter: string;
  reason: string;
  value?: number;
}

/** A decision from one filter: keep, or drop with a reason. */
export type FilterResult = { keep: true } | { keep: false; reason: string; value?: number };

export const KEEP: FilterResult = { keep: true };

export function drop(reason: string, value?: number): FilterResult {
  return value === undefined ? { keep: false, reason } : { keep: false, reason, value };
}

/**
 * A document filter: a decision on one document. It may annotate metadata; only line-level rules (C4) rewrite the
 * text of a document they keep.
 */
export interface DocumentFilter {
  readonly name: string;
  apply(doc: Document): FilterResult;
}

/** A document transform: returns the (possibly changed) document; used for cleaning and PII scrubbing. */
export interface DocumentTransform {
  readonly name: string;
  apply(doc: Document): Document;
}

/** UTF-8 byte length without allocating a buffer for ASCII-heavy text. */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}
