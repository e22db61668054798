// Public surface of the tokenizer layer (no dependency on src/core): what data, eval, serve and cli import.
// Not an implementation; each name lives in the file it is re-exported from.
export { BpeTokenizer, seededRandom } from './bpe.js';
export type { BpeSpec, EncodeOptions, MergeRule, SpecialSet } from './bpe.js';
export { countPreTokens, trainBpe } from './bpe-trainer.js';
export type { BpeTrainOptions } from './bpe-trainer.js';
export { UnigramTokenizer } from './unigram.js';
export type { UnigramPiece, UnigramSpec } from './unigram.js';
export { countUnigramWords, trainUnigram } from './unigram-trainer.js';
export type { UnigramTrainOptions } from './unigram-trainer.js';
export { normalizeText } from './normalize.js';
export type { NormalizerOptions } from './normalize.js';
export { PATTERN_SOURCES, ORIGINAL_PATTERNS, compilePattern, splitText } from './patterns.js';
export type { PatternName } from './patterns.js';
export { loadGpt2Files, loadTiktokenFile, loadTiktokenNpmJson, parseGpt2Files, parseTiktokenNpmJson, parseTiktokenRanks } from './loaders.js';
export { loadTokenizer, parseTokenizer, saveTokenizer, serializeTokenizer, vocabListing } from './format.js';
export { exportHfTokenizer, importHfTokenizer, parseHfTokenizer } from './hf.js';
export { loadAnyTokenizer } from './load-any.js';
export { encodeText, tokenizerKind } from './tokenizer.js';
export type { Tokenizer } from './tokenizer.js';
export { TokenFileReader, TokenFileWriter, dtypeForVocab, readTokenFile, writeTokenFile } from './token-file.js';
export type { TokenDtype } from './token-file.js';
export { EncoderPool } from './parallel.js';
export { tokenizeFiles } from './tokenize-files.js';
export type { TokenizeFilesOptions, TokenizeFilesResult } from './tokenize-files.js';
