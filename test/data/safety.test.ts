import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PiiScrubber, DEFAULT_PII } from '../../src/data/pii.js';
import { HarmfulContentFilter } from '../../src/data/harmful.js';
import { LanguageFilter, LanguageIdentifier } from '../../src/data/langid.js';
import { buildProfiles, cleanUiString, parseMo } from '../../src/data/langid-build.js';
import type { Document } from '../../src/data/document.js';

const doc = (text: string): Document => ({ id: 't', text, metadata: {} });

test('PII: e-mails, phone numbers and IPs are replaced; dates, years, versions and times are not', () => {
  const s = new PiiScrubber(DEFAULT_PII);
  const out = s.scrub(
    'Mail jane.doe+x@mail.example.co.uk or call +44 20 7946 0958 or (555) 123-4567 or 555-123-4567. ' +
      'Server 192.168.1.20 and 2001:db8:85a3::8a2e:370:7334 answered. ' +
      'In 2019-2021, on 2024-01-15 at 12:30, version 3.11.4 and 1.2.3.4.5 shipped; 999.1.1.1 is no IP.',
  );
  assert.equal(
    out,
    'Mail <EMAIL> or call <PHONE> or <PHONE> or <PHONE>. Server <IP_ADDRESS> and <IP_ADDRESS> answered. ' +
      'In 2019-2021, on 2024-01-15 at 12:30, version 3.11.4 and 1.2.3.4.5 shipped; 999.1.1.1 is no IP.',
  );
  assert.deepEqual(s.counts, { email: 1, phone: 3, ip: 2 });
  const off = new PiiScrubber({ ...DEFAULT_PII, phone: false, emailToken: '[e]' });
  assert.equal(off.scrub('a@b.org 555-123-4567'), '[e] 555-123-4567');
});

test('harmful: whole-word and phrase matches against the count and ratio thresholds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-harm-'));
  const file = join(dir, 'terms.txt');
  writeFileSync(file, '# comment\nbadword\nvery bad phrase\n');
  const byCount = new HarmfulContentFilter({ terms: [], termsFile: file, minMatches: 2, maxMatchRatio: null });
  assert.equal(byCount.apply(doc('One badword and badwords (not whole) here.')).keep, true);
  const r = byCount.apply(doc('One BADWORD and a very   bad phrase here.'));
  assert.deepEqual(r, { keep: false, reason: 'harmful_term_count', value: 2 });
  // Ratio: 1 match in 10 words = 0.1 passes at 0.1, 1 in 9 fails.
  const byRatio = new HarmfulContentFilter({ terms: ['badword'], minMatches: null, maxMatchRatio: 0.1 });
  assert.equal(byRatio.apply(doc('badword a b c d e f g h i')).keep, true);
  assert.equal(byRatio.apply(doc('badword a b c d e f g h')).keep, false);
  rmSync(dir, { recursive: true });
});

test('language ID: hand-written sentences in several languages, and the filter at its score threshold', () => {
  const id = new LanguageIdentifier();
  const samples: [string, string][] = [
    ['en', 'The committee will publish its findings after the hearing, and the public can comment until the end of the month.'],
    ['de', 'Die Ergebnisse werden nach der Anhörung veröffentlicht, und die Öffentlichkeit kann bis zum Monatsende Stellung nehmen.'],
    ['fr', "Le comité publiera ses conclusions après l'audience, et le public pourra les commenter jusqu'à la fin du mois."],
    ['es', 'El comité publicará sus conclusiones después de la audiencia y el público podrá comentarlas hasta final de mes.'],
    ['it', "Il comitato pubblicherà i risultati dopo l'udienza e il pubblico potrà commentarli fino alla fine del mese."],
    ['nl', 'De commissie publiceert haar bevindingen na de hoorzitting en het publiek kan tot het einde van de maand reageren.'],
    ['pl', 'Komisja opublikuje swoje ustalenia po przesłuchaniu, a opinia publiczna może je komentować do końca miesiąca.'],
    ['ru', 'Комитет опубликует свои выводы после слушаний, и общественность сможет комментировать их до конца месяца.'],
  ];
  for (const [lang, text] of samples) assert.equal(id.predict(text).language, lang, text);
  const f = new LanguageFilter({ languages: ['en'], minScore: 0.65 });
  const en = doc(samples[0]![1]);
  assert.equal(f.apply(en).keep, true);
  assert.equal(en.metadata.language, 'en');
  assert.ok((en.metadata.language_score as number) >= 0.65);
  const de = f.apply(doc(samples[1]![1]));
  assert.equal(de.keep, false);
  if (!de.keep) assert.equal(de.reason, 'language_de');
  // The score threshold: a document whose English score is s passes at minScore = s and fails just above it.
  const s = id.predict(samples[0]![1]).score;
  assert.equal(new LanguageFilter({ languages: ['en'], minScore: s }).apply(doc(samples[0]![1])).keep, true);
  const strict = new LanguageFilter({ languages: ['en'], minScore: s + 1e-9 }).apply(doc(samples[0]![1]));
  assert.equal(strict.keep, false);
  assert.throws(() => new LanguageFilter({ languages: ['xx'], minScore: 0.5 }), /filters\.language\.languages: unknown language "xx"/);
  // Early stopping: a long document decided on its first few hundred characters, the same as reading 1000.
  const long = (samples[0]![1] + ' ').repeat(9);
  const full = new LanguageIdentifier(undefined, 1000, 30, 1).predict(long);
  const early = id.predict(long);
  assert.equal(early.language, full.language);
  assert.ok(early.score >= 0.999 && full.score >= 0.999);
});

test('langid build: .mo parsing in both byte orders, UI-string cleaning, profile building', () => {
  // A two-entry catalog written by hand: header entry plus one translation.
  const pairs: [string, string][] = [['', 'Content-Type: text/plain; charset=UTF-8\n'], ['Open file', 'Datei öffnen']];
  const make = (le: boolean): Buffer => {
    const strs = pairs.flat().map((s) => Buffer.from(s, 'utf8'));
    const n = pairs.length;
    const header = 28;
    const tables = header + 16 * n;
    const buf = Buffer.alloc(tables + strs.reduce((a, b) => a + b.length + 1, 0));
    const w = (o: number, v: number): void => void (le ? buf.writeUInt32LE(v, o) : buf.writeUInt32BE(v, o));
    w(0, 0x950412de);
    w(8, n);
    w(12, header);
    w(16, header + 8 * n);
    let off = tables;
    strs.forEach((s, i) => {
      const table = i % 2 === 0 ? header : header + 8 * n;
      const k = Math.floor(i / 2);
      w(table + 8 * k, s.length);
      w(table + 8 * k + 4, off);
      s.copy(buf, off);
      off += s.length + 1;
    });
    return buf;
  };
  assert.deepEqual(parseMo(make(true)), pairs);
  assert.deepEqual(parseMo(make(false)), pairs);
  assert.throws(() => parseMo(Buffer.alloc(40), 'x.mo'), /x\.mo: bad \.mo magic/);
  assert.equal(cleanUiString('_Open %s file {0} <b>now</b>'), 'Open file now');
  const profiles = buildProfiles(new Map([['aa', ['abab abab']], ['bb', ['xyz xyz']]]), 50);
  const id = new LanguageIdentifier(profiles);
  assert.equal(id.predict('ab ab abab').language, 'aa');
  assert.equal(id.predict('zyx xyz').language, 'bb');
});
