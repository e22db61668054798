// The Python code corpus of issue 14: the standard library plus a listed set of Debian python3-* packages whose
// Debian copyright file shows a permissive license (MIT/Expat, BSD, Apache, PSF, ISC), written as JSONL documents
// (one whole .py file each, with package/path metadata) and a manifest of package, version and license. A fixed
// held-out set of whole files is written apart. Not the installer (scripts/code-corpus.sh) and not curation.
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { writeFileAtomic, writeJsonAtomic } from './writers.js';
import { isValFile, stdlibFiles } from './stdlib-code.js';

/** Where Debian installs pure-Python modules for every python3 version. */
export const DIST_PACKAGES = '/usr/lib/python3/dist-packages';

/** The held-out rule: the standard library's split rule (stdlib-code.ts) applied to the path below its root. */
export const CODE_HELDOUT_RULE =
  'held-out ⇔ FNV-1a-32(path relative to /usr/lib/python3.N/ or /usr/lib/python3/dist-packages/, UTF-8) mod 100 < 5';

export interface PackageEntry {
  name: string;
  /** The license the list claims; checked against the package's /usr/share/doc/<name>/copyright. */
  declared: string;
  line: number;
}

/**
 * Reads a package list: one `package  license` pair per line, `#` starts a comment. A malformed line is an error
 * naming the file and line.
 */
export function parsePackageList(text: string, file: string): PackageEntry[] {
  const out: PackageEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const parts = line.split(/\s+/);
    if (parts.length !== 2 || !/^[a-z0-9][a-z0-9.+-]+$/.test(parts[0]!)) {
      throw new UserError(`${file}:${i + 1}: expected "<debian-package> <license>", got ${JSON.stringify(raw.trim())}`);
    }
    out.push({ name: parts[0]!, declared: parts[1]!, line: i + 1 });
  });
  if (out.length === 0) throw new UserError(`${file}: no packages listed`);
  return out;
}

/** License short names (Debian DEP-5 spelling) that count as permissive here. */
const PERMISSIVE = /^(mit|expat|bsd(-[0-9]-clause)?|apache(-2(\.0)?)?|psf(-2(\.0)?)?|python(-2(\.0)?)?|isc|zlib)$/i;

/** Text that a non-machine-readable copyright file holds for each permissive family. */
const EVIDENCE: ReadonlyArray<{ family: RegExp; text: RegExp }> = [
  { family: /^(mit|expat)/i, text: /Permission is hereby granted, free of charge/i },
  { family: /^bsd/i, text: /Redistribution and use in source and binary forms/i },
  { family: /^apache/i, text: /Apache License/i },
  { family: /^(psf|python)/i, text: /PYTHON SOFTWARE FOUNDATION LICENSE/i },
  { family: /^isc/i, text: /Permission to use, copy, modify, and(\/or)? distribute this software for any purpose/i },
];

/** A license expression is permissive when every "and" part has a permissive "or" alternative. */
export function isPermissive(expression: string): boolean {
  const parts = expression.split(/\s+and\s+/i);
  return parts.every((p) => p.replace(/[()]/g, '').split(/\s+or\s+|\s*,\s*/i).some((alt) => PERMISSIVE.test(alt.trim().replace(/\+$/, ''))));
}

export interface LicenseFinding {
  license: string;
  /** How it was read: the DEP-5 `Files: *` paragraph, or the declared name confirmed by the license's own text. */
  basis: 'dep5-files-star' | 'declared-text-found';
}

/**
 * The license of a package from its Debian copyright file: in the machine-readable format (DEP-5), the `License:`
 * of the `Files: *` paragraph (which covers the upstream source); otherwise the declared license, when the file
 * holds that license's own wording. Throws a UserError naming the file when it is not permissive or not shown.
 */
export function readLicense(copyright: string, declared: string, file: string): LicenseFinding {
  if (/^Format:\s*\S*copyright-format/m.test(copyright)) {
    for (const para of copyright.split(/\n\s*\n/)) {
      const files = /^Files:\s*(.*)$/m.exec(para)?.[1]?.trim().split(/\s+/) ?? [];
      if (!files.includes('*')) continue;
      const license = /^License:\s*(.*)$/m.exec(para)?.[1]?.trim() ?? '';
      if (license === '') throw new UserError(`${file}: the "Files: *" paragraph has no License field`);
      if (!isPermissive(license)) throw new UserError(`${file}: "Files: *" is licensed "${license}", not MIT/BSD/Apache/PSF/ISC`);
      return { license, basis: 'dep5-files-star' };
    }
    throw new UserError(`${file}: machine-readable copyright file without a "Files: *" paragraph`);
  }
  if (!isPermissive(declared)) throw new UserError(`${file}: the declared license "${declared}" is not MIT/BSD/Apache/PSF/ISC`);
  const ev = EVIDENCE.find((e) => e.family.test(declared));
  if (!ev || !ev.text.test(copyright)) throw new UserError(`${file}: no ${declared} license text found (the file is not machine-readable, so the declared license must appear in it)`);
  return { license: declared, basis: 'declared-text-found' };
}

/** The installed version of a Debian package (dpkg-query); a clear error when it is not installed. */
export function packageVersion(name: string): string {
  try {
    const out = execFileSync('dpkg-query', ['-W', '-f=${db:Status-Status} ${Version}', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    const [status, version] = out.split(' ');
    if (status !== 'installed' || !version) throw new Error(out);
    return version;
  } catch (e) {
    throw new UserError(`${name}: not installed (dpkg-query: ${(e as Error).message.split('\n')[0]}); run scripts/code-corpus.sh, which installs the listed packages`, { cause: e });
  }
}

/** The package's regular, non-empty .py files below dist-packages (dpkg -L), sorted, with paths relative to it. */
export function packagePyFiles(name: string): { path: string; rel: string }[] {
  const listed = execFileSync('dpkg', ['-L', name], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n');
  const out: { path: string; rel: string }[] = [];
  for (const path of listed) {
    if (!path.startsWith(DIST_PACKAGES + '/') || !path.endsWith('.py') || !existsSync(path)) continue;
    const st = lstatSync(path);
    if (st.isFile() && st.size > 0) out.push({ path, rel: relative(DIST_PACKAGES, path) });
  }
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** The Debian package that holds the standard library's .py files of the newest python3.N. */
function stdlibPackage(files: { path: string }[]): string {
  const owner = execFileSync('dpkg', ['-S', files[0]!.path], { encoding: 'utf8' }).split(':')[0]!;
  // The standard library spans libpython3.N-minimal and libpython3.N-stdlib (one source package, one copyright
  // text); the manifest names the owner of the first file.
  return owner.trim();
}

export interface PackageRecord {
  package: string;
  version: string;
  license: string;
  license_basis: LicenseFinding['basis'];
  copyright: string;
  source: 'stdlib' | 'packages';
  files: number;
  bytes: number;
  heldout_files: number;
  heldout_bytes: number;
  /** .py files that are not valid UTF-8 (Python 2 era Latin-1 test data): left out, counted. */
  skipped_not_utf8: number;
}

export interface CodeCorpusManifest {
  magic: 'lmforge-code-corpus';
  version: 1;
  heldout_rule: string;
  packages: PackageRecord[];
  train: { files: number; bytes: number; paths: string[] };
  heldout: { files: number; bytes: number; path: string };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Writes out/train/{stdlib,packages}/<package>.jsonl (one whole file per line: text, id, package, path, rel, source),
 * out/heldout.jsonl (the held-out files of every package) and out/manifest.json. The standard library comes first
 * as source "stdlib"; every listed package must be installed and permissively licensed, or nothing is written.
 */
export function buildCodeCorpus(packageList: string, outDir: string, log: (line: string) => void = () => undefined): CodeCorpusManifest {
  const entries = parsePackageList(readFileSync(packageList, 'utf8'), packageList);
  const std = stdlibFiles();
  const stdPkg = stdlibPackage(std);
  const units: { pkg: string; declared: string; source: 'stdlib' | 'packages'; files: { path: string; rel: string }[] }[] = [
    { pkg: stdPkg, declared: 'PSF', source: 'stdlib', files: std },
    ...entries.map((e) => ({ pkg: e.name, declared: e.declared, source: 'packages' as const, files: [] as { path: string; rel: string }[] })),
  ];
  // Every check first (installed, licensed, has files), so a bad list fails before anything is written.
  const checked = units.map((u) => {
    const version = packageVersion(u.pkg);
    const copyright = `/usr/share/doc/${u.pkg}/copyright`;
    if (!existsSync(copyright)) throw new UserError(`${u.pkg}: ${copyright} does not exist`);
    const lic = readLicense(readFileSync(copyright, 'utf8'), u.declared, copyright);
    const files = u.source === 'stdlib' ? u.files : packagePyFiles(u.pkg);
    if (files.length === 0) throw new UserError(`${u.pkg}: no .py files under ${DIST_PACKAGES} (dpkg -L ${u.pkg})`);
    return { ...u, version, copyright, lic, files };
  });
  for (const d of ['stdlib', 'packages']) ensureDir(join(outDir, 'train', d));
  const records: PackageRecord[] = [];
  const heldout: string[] = [];
  const trainPaths: string[] = [];
  for (const u of checked) {
    const rec: PackageRecord = {
      package: u.pkg, version: u.version, license: u.lic.license, license_basis: u.lic.basis, copyright: u.copyright, source: u.source,
      files: 0, bytes: 0, heldout_files: 0, heldout_bytes: 0, skipped_not_utf8: 0,
    };
    const lines: string[] = [];
    for (const f of u.files) {
      const raw = readFileSync(f.path);
      let text: string;
      try {
        text = utf8.decode(raw);
      } catch {
        rec.skipped_not_utf8++;
        continue;
      }
      const line = JSON.stringify({ id: `${u.pkg}:${f.rel}`, text, package: u.pkg, path: f.path, rel: f.rel, source: u.source });
      if (isValFile(f.rel)) {
        heldout.push(line);
        rec.heldout_files++;
        rec.heldout_bytes += raw.length;
      } else {
        lines.push(line);
        rec.files++;
        rec.bytes += raw.length;
      }
    }
    const path = join(outDir, 'train', u.source, `${u.pkg}.jsonl`);
    writeFileAtomic(path, lines.join('\n') + '\n');
    trainPaths.push(path);
    records.push(rec);
    log(`code-corpus: ${u.pkg} ${u.version} (${u.lic.license}): ${rec.files} train files, ${(rec.bytes / 1e6).toFixed(2)} MB; ${rec.heldout_files} held out; ${rec.skipped_not_utf8} not UTF-8`);
  }
  const heldoutPath = join(outDir, 'heldout.jsonl');
  writeFileAtomic(heldoutPath, heldout.join('\n') + '\n');
  const sum = (k: 'files' | 'bytes' | 'heldout_files' | 'heldout_bytes'): number => records.reduce((n, r) => n + r[k], 0);
  const manifest: CodeCorpusManifest = {
    magic: 'lmforge-code-corpus', version: 1, heldout_rule: CODE_HELDOUT_RULE, packages: records,
    train: { files: sum('files'), bytes: sum('bytes'), paths: trainPaths },
    heldout: { files: sum('heldout_files'), bytes: sum('heldout_bytes'), path: heldoutPath },
  };
  writeJsonAtomic(join(outDir, 'manifest.json'), manifest);
  log(`code-corpus: ${manifest.train.files} train files (${(manifest.train.bytes / 1e6).toFixed(1)} MB), ${manifest.heldout.files} held-out files (${(manifest.heldout.bytes / 1e6).toFixed(2)} MB) → ${outDir}`);
  return manifest;
}
