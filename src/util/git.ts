// The code version a run or a pipeline stage was made with: the git commit of the checkout (and whether its
// tracked files had uncommitted changes), or null outside a git checkout or without git. Not a git library.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** lmforge's own directory (this file is dist/src/util/git.js once compiled): the code a run is made with. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface CodeVersion {
  commit: string;
  /** Tracked files differed from the commit (the run's code is the commit plus local edits). */
  dirty: boolean;
}

const cache = new Map<string, CodeVersion | null>();

function git(args: string[], cwd: string): string | null {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The commit of the checkout at `cwd` (default: lmforge's own); cached per directory for the process. */
export function codeVersion(cwd: string = PACKAGE_ROOT): CodeVersion | null {
  if (cache.has(cwd)) return cache.get(cwd) ?? null;
  const commit = git(['rev-parse', 'HEAD'], cwd);
  // --untracked-files=no: run outputs and data lying in the checkout do not make the code dirty.
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no'], cwd);
  const v = commit === null ? null : { commit, dirty: status !== null && status !== '' };
  cache.set(cwd, v);
  return v;
}

/** lmforge's package version (package.json beside PACKAGE_ROOT). */
export function lmforgeVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** One string naming the code: the commit (with "+dirty" after local edits), else the package version. */
export function codeVersionString(): string {
  const v = codeVersion();
  return v ? `${v.commit}${v.dirty ? '+dirty' : ''}` : `lmforge@${lmforgeVersion()}`;
}
