// Output directories and file-system errors a user can fix: ensureDir creates a directory one component at a time
// and turns every failure into a UserError naming the path and the cause (not a directory, read-only, permission
// denied, no space). Not atomic writes (atomic.ts) and not a general fs wrapper.
import { closeSync, mkdirSync, openSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UserError, describeError } from './errors.js';

/** The errno code of a node:fs error ("ENOENT"), else undefined. */
export function errnoCode(e: unknown): string | undefined {
  if (typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string') return e.code;
  return undefined;
}

/** What an errno means for the user, in words; unknown codes fall back to the error's own message. */
export function fsErrorReason(e: unknown): string {
  switch (errnoCode(e)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'ENOTDIR':
      return 'a component of the path is not a directory';
    case 'EISDIR':
      return 'is a directory';
    case 'EEXIST':
      return 'already exists';
    case 'ENOENT':
      return 'no such file or directory';
    case 'ENAMETOOLONG':
      return 'file name too long';
    case 'EMFILE':
    case 'ENFILE':
      return 'too many open files';
    case 'EIO':
      return 'input/output error';
    default:
      return describeError(e);
  }
}

/** True for errors caused by the file system or the user's paths (errno errors), which are not bugs. */
export function isFsError(e: unknown): boolean {
  return errnoCode(e) !== undefined;
}

/** A UserError "<path>: cannot <action>: <reason>" for an errno error; anything else is returned unchanged. */
export function fsUserError(e: unknown, path: string, action: string): unknown {
  if (e instanceof UserError || !isFsError(e)) return e;
  return new UserError(`${path}: cannot ${action}: ${fsErrorReason(e)}`, { cause: e });
}

/**
 * Makes sure `path` is a writable directory, creating each missing component with a plain (non-recursive) mkdir
 * — Node 20's recursive mkdir spins forever on file systems that answer ENOENT to mkdir, such as /proc — and
 * checking writability by creating and removing a probe file (skip it with checkWritable: false where a write
 * follows at once and names its own error). Errors are UserErrors naming `path`; `role` says
 * what the directory is for ("output directory"). Returns the absolute path.
 */
export function ensureDir(path: string, role = 'output directory', options: { checkWritable?: boolean } = {}): string {
  const abs = resolve(path);
  const missing: string[] = [];
  for (let p = abs; ; ) {
    let isDir: boolean;
    try {
      isDir = statSync(p).isDirectory();
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') {
        missing.push(p);
        const parent = dirname(p);
        if (parent === p) throw new UserError(`${path}: cannot create the ${role}: no such file or directory`);
        p = parent;
        continue;
      }
      if (errnoCode(e) === 'ENOTDIR') {
        let file = dirname(p);
        while (dirname(file) !== file && !isPlainFile(file)) file = dirname(file);
        throw new UserError(`${path}: cannot use as the ${role}: ${file} is a file, not a directory`, { cause: e });
      }
      throw new UserError(`${path}: cannot use as the ${role}: ${p}: ${fsErrorReason(e)}`, { cause: e });
    }
    if (!isDir) {
      const where = p === abs ? 'it is a file, not a directory' : `${p} is a file, not a directory`;
      throw new UserError(`${path}: cannot use as the ${role}: ${where}`);
    }
    break;
  }
  for (const dir of missing.reverse()) {
    try {
      mkdirSync(dir);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST' && statSync(dir, { throwIfNoEntry: false })?.isDirectory()) continue; // made by a concurrent run
      const why = errnoCode(e) === 'ENOENT' ? 'the file system does not allow new entries there' : fsErrorReason(e);
      throw new UserError(`${path}: cannot create the ${role}${dir === abs ? '' : ` (at ${dir})`}: ${why}`, { cause: e });
    }
  }
  if (options.checkWritable ?? true) checkWritableDir(abs, path, role);
  return abs;
}

function isPlainFile(p: string): boolean {
  try {
    return !statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Creates and removes a probe file in `dir` (access(2) says yes to root on read-only and pseudo file systems). */
function checkWritableDir(dir: string, shown: string, role: string): void {
  const probe = join(dir, `.lmforge-write-probe-${process.pid}`);
  try {
    closeSync(openSync(probe, 'w'));
  } catch (e) {
    const why = errnoCode(e) === 'ENOENT' ? 'the file system does not allow new files there' : fsErrorReason(e);
    throw new UserError(`${shown}: the ${role} is not writable: ${why}`, { cause: e });
  }
  rmSync(probe, { force: true });
}

/** ensureDir for the directory that will hold the output file `file`, and a check that `file` is not a directory. */
export function ensureParentDir(file: string, role = 'output file'): void {
  ensureDir(dirname(resolve(file)), `directory of the ${role}`);
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`${file}: cannot write the ${role}: it is a directory`);
}

/** The size of input file `path`; a missing path, a directory or an unreadable file is a UserError naming it. */
export function inputFileSize(path: string, role = 'input file'): number {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new UserError(`${path}: cannot read the ${role}: ${fsErrorReason(e)}`, { cause: e });
  }
  if (st.isDirectory()) throw new UserError(`${path}: cannot read the ${role}: it is a directory`);
  try {
    closeSync(openSync(path, 'r'));
  } catch (e) {
    throw new UserError(`${path}: cannot read the ${role}: ${fsErrorReason(e)}`, { cause: e });
  }
  return st.size;
}

/** The real path of `p` when it exists (symlinks resolved), else its absolute path. */
function realOrResolved(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/**
 * Refuses an output that would overwrite one of the inputs (e.g. `--out` naming the training text), before any
 * work: `outputs` are the files a command will write, `inputs` the files it reads.
 */
export function checkOutputsAreNotInputs(outputs: readonly string[], inputs: readonly string[]): void {
  const ins = new Map(inputs.map((p) => [realOrResolved(p), p]));
  for (const out of outputs) {
    const same = ins.get(realOrResolved(out));
    if (same !== undefined) throw new UserError(`${out}: this output would overwrite the input ${same}; choose another output path`);
  }
}
