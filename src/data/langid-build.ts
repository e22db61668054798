// Builds the language-ID profiles (langid-profiles.ts) from GNU gettext catalogs (.mo files) on this machine:
// translations (msgstr) for each language, the English source strings (msgid) for English. Catalogs are split
// 80/20 by a hash of their file name; the held-out 20% measures accuracy. Run:
//   node dist/src/data/langid-build.js [/usr/share/locale] [src/data/langid-profiles.ts]
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from './writers.js';
import { LanguageIdentifier, forEachNgram, letterText } from './langid.js';
import type { LanguageProfile } from './langid.js';

export const BUILD_LANGUAGES = ['cs', 'da', 'de', 'en', 'es', 'fi', 'fr', 'hu', 'it', 'nl', 'pl', 'pt', 'ro', 'ru', 'sv', 'tr', 'uk'];

/** Parses a .mo catalog (either byte order) into [msgid, msgstr] pairs; plural forms are split on NUL. */
export function parseMo(buf: Buffer, file = '<buffer>'): [string, string][] {
  if (buf.length < 28) throw new Error(`${file}: too short for a .mo catalog`);
  const magic = buf.readUInt32LE(0);
  let le: boolean;
  if (magic === 0x950412de) le = true;
  else if (magic === 0xde120495) le = false;
  else throw new Error(`${file}: bad .mo magic 0x${magic.toString(16)}, expected 0x950412de`);
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const n = u32(8);
  const origTable = u32(12);
  const transTable = u32(16);
  const str = (table: number, i: number): string => {
    const len = u32(table + 8 * i);
    const off = u32(table + 8 * i + 4);
    if (off + len > buf.length) throw new Error(`${file}: string ${i} runs past the end`);
    return buf.toString('utf8', off, off + len);
  };
  const out: [string, string][] = [];
  for (let i = 0; i < n; i++) out.push([str(origTable, i), str(transTable, i)]);
  return out;
}

/** Strips format placeholders, markup and accelerators from a UI string. */
export function cleanUiString(s: string): string {
  return s
    .replace(/%(\d+\$)?[-#0 +']*\d*(\.\d+)?[hlLqjzt]*[a-zA-Z%]/g, ' ')
    .replace(/\{[^}]*\}|<[^>]*>|\$\{[^}]*\}/g, ' ')
    .replace(/(^|\s)_(?=\w)|&(?=\w)/g, '$1')
    .replace(/\s+/g, ' ')
    .trim();
}

function moFiles(dir: string): string[] {
  const d = join(dir, 'LC_MESSAGES');
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => f.endsWith('.mo'))
    .sort()
    .map((f) => join(d, f));
}

function heldOut(file: string): boolean {
  let h = 2166136261;
  const name = file.slice(file.lastIndexOf('/') + 1);
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 16777619) >>> 0;
  return h % 5 === 0;
}

interface Corpus {
  train: Map<string, string[]>;
  test: Map<string, string[]>;
}

export function collectCorpus(localeDir: string, languages = BUILD_LANGUAGES): Corpus {
  const train = new Map<string, string[]>();
  const test = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, lang: string, s: string): void => {
    const list = m.get(lang) ?? [];
    list.push(s);
    m.set(lang, list);
  };
  for (const lang of languages) {
    if (lang === 'en') continue;
    for (const file of moFiles(join(localeDir, lang))) {
      let pairs: [string, string][];
      try {
        pairs = parseMo(readFileSync(file), file);
      } catch {
        continue;
      }
      const target = heldOut(file) ? test : train;
      for (const [id, str] of pairs) {
        if (id === '' || str === '') continue;
        const ids = id.split('\0');
        const strs = str.split('\0');
        // The English source strings come from the German catalogs only, so each English string counts once.
        if (lang === 'de') for (const s of ids) add(target, 'en', cleanUiString(s));
        for (const s of strs) if (!ids.includes(s)) add(target, lang, cleanUiString(s));
      }
    }
  }
  return { train, test };
}

export function buildProfiles(train: Map<string, string[]>, topK: number): Record<string, LanguageProfile> {
  const out: Record<string, LanguageProfile> = {};
  for (const [lang, strings] of [...train.entries()].sort()) {
    const counts = new Map<string, number>();
    let total = 0;
    for (const s of strings) {
      forEachNgram(letterText(s, 10_000), (g) => {
        counts.set(g, (counts.get(g) ?? 0) + 1);
        total++;
      });
    }
    const top = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, topK);
    out[lang] = { total, grams: top.map(([g, c]) => `${g}\t${c}`).join('\n') };
  }
  return out;
}

/** Accuracy on held-out strings of at least `minChars` characters, by language. */
export function evaluate(id: LanguageIdentifier, test: Map<string, string[]>, minChars: number): Record<string, number> {
  const acc: Record<string, number> = {};
  for (const [lang, strings] of [...test.entries()].sort()) {
    const long = strings.filter((s) => s.length >= minChars);
    if (long.length === 0) continue;
    let ok = 0;
    for (const s of long) if (id.predict(s).language === lang) ok++;
    acc[lang] = ok / long.length;
  }
  return acc;
}

async function main(): Promise<void> {
  const localeDir = process.argv[2] ?? '/usr/share/locale';
  const outPath = process.argv[3] ?? 'src/data/langid-profiles.ts';
  const { train, test } = collectCorpus(localeDir);
  const profiles = buildProfiles(train, 1200);
  const id = new LanguageIdentifier(profiles);
  const lines: string[] = [];
  for (const minChars of [40, 100]) {
    const acc = evaluate(id, test, minChars);
    const vals = Object.values(acc);
    const mean = vals.reduce((a, b) => a + b, 0) / Math.max(vals.length, 1);
    lines.push(`held-out accuracy, strings >= ${minChars} chars: mean ${mean.toFixed(3)} ` +
      Object.entries(acc).map(([l, a]) => `${l} ${a.toFixed(3)}`).join(' '));
  }
  const sizes = [...train.entries()].map(([l, s]) => `${l} ${s.length}`).join(' ');
  const src =
    `// GENERATED by src/data/langid-build.ts from the gettext catalogs in ${localeDir} (Debian packages' translations;\n` +
    `// English = msgids of the German catalogs). Top 1200 character 1-3-grams per language. Do not edit by hand.\n` +
    `// Training strings per language: ${sizes}\n` +
    lines.map((l) => `// ${l}\n`).join('') +
    `import type { LanguageProfile } from './langid.js';\n\n` +
    `export const PROFILES: Record<string, LanguageProfile> = ${JSON.stringify(profiles, null, 1)};\n`;
  writeFileAtomic(outPath, src);
  for (const l of lines) console.log(l);
  console.log(`wrote ${outPath}`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await main();
