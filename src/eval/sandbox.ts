// Runs untrusted Python programs (model-written code) in a child process with limits: a wall-clock timeout that
// kills the whole process group, CPU-time, address-space, file-size and core-dump limits set by a Python preamble
// (resource.setrlimit; soft = hard, but for CPU time hard = soft + 1 s), a private temporary working directory removed afterwards, no network (a new
// network namespace through `unshare --net` when the kernel allows it, else socket creation disabled in the
// preamble), stdin closed, stdout/stderr captured and truncated. A crash, timeout or memory blow-up is a result,
// never a hang and never an exception. It is NOT a security boundary: see configs/tasks/README.md for what it
// leaves open.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SandboxOptions {
  /** Interpreter (default /usr/bin/python3). */
  python?: string;
  /** Wall-clock limit in seconds; the process group is killed at this point (default 10). */
  timeoutS?: number;
  /**
   * CPU-time limit in seconds (RLIMIT_CPU; default: the wall limit rounded up, plus 1 s, so that a single-threaded
   * loop meets the wall clock first — equal limits raced — and the CPU limit stays the backstop for threads).
   */
  cpuS?: number;
  /** Address-space limit in MiB (RLIMIT_AS; default 2048). */
  memoryMb?: number;
  /** Largest file the program may write, MiB (RLIMIT_FSIZE; default 64). */
  fileMb?: number;
  /** Bytes of stdout and of stderr kept (the rest is read and dropped; default 16 KiB). */
  maxOutput?: number;
  /** 'auto' (default): the strongest isolation the machine permits; 'sockets-disabled': the preamble's only. */
  network?: 'auto' | 'sockets-disabled';
}

/**
 * How the program was cut off from the network: 'netns' (`unshare --net`, as root), 'userns+netns'
 * (`unshare --user --map-root-user --net`, unprivileged), or 'sockets-disabled' (the preamble replaces
 * socket.socket; a C extension or a subprocess still reaches the network).
 */
export type NetworkIsolation = 'netns' | 'userns+netns' | 'sockets-disabled';

export type SandboxStatus = 'passed' | 'failed' | 'timeout' | 'memory' | 'crashed';

export interface SandboxResult {
  status: SandboxStatus;
  /** One line: the exception's last line, "wall-clock limit of 3 s", "killed by SIGSEGV", … ("" when passed). */
  reason: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

const PREAMBLE = String.raw`
import resource, sys
def _limit(which, value, hard=None):
    try:
        resource.setrlimit(which, (value, value if hard is None else hard))
    except (ValueError, OSError):
        pass
_cpu, _as, _fsize, _nosock = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
# SIGXCPU at the soft limit (a hard limit equal to it would SIGKILL instead, indistinguishable from other kills).
_limit(resource.RLIMIT_CPU, _cpu, _cpu + 1)
_limit(resource.RLIMIT_AS, _as)
_limit(resource.RLIMIT_FSIZE, _fsize)
_limit(resource.RLIMIT_CORE, 0)
if _nosock:
    import socket
    def _no_network(*args, **kwargs):
        raise OSError(101, 'network disabled by the lmforge sandbox')
    socket.socket = _no_network
    socket.create_connection = _no_network
    socket.socketpair = _no_network
    socket.getaddrinfo = _no_network
del resource, _limit, _cpu, _as, _fsize, _nosock
sys.argv = ['program.py']
with open('program.py', encoding='utf-8') as _f:
    _code = compile(_f.read(), 'program.py', 'exec')
del _f
exec(_code, {'__name__': '__main__', '__file__': 'program.py', '__builtins__': __builtins__})
`;

let isolation: { mode: NetworkIsolation; prefix: string[] } | undefined;

/** Probes once per process which network isolation this machine permits (the strongest that works). */
export function networkIsolation(python = '/usr/bin/python3'): NetworkIsolation {
  return isolationOf(python).mode;
}

function isolationOf(python: string): { mode: NetworkIsolation; prefix: string[] } {
  if (isolation) return isolation;
  // No PID namespace: its first process is an init that ignores its own default-action signals (SIGXCPU included).
  // unshare execs the interpreter, so the program is the process we spawned, leading its own process group.
  const tries: [NetworkIsolation, string[]][] = [
    ['netns', ['unshare', '--net', '--']],
    ['userns+netns', ['unshare', '--user', '--map-root-user', '--net', '--']],
  ];
  for (const [mode, prefix] of tries) {
    const r = spawnSync(prefix[0]!, [...prefix.slice(1), python, '-c', 'pass'], { stdio: 'ignore', timeout: 10_000 });
    if (r.status === 0) return (isolation = { mode, prefix });
  }
  return (isolation = { mode: 'sockets-disabled', prefix: [] });
}

/** The last non-empty line of a Python traceback (e.g. "AssertionError: ..."), cut to 300 characters. */
function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

/** Runs one program; always resolves. */
export function runPython(program: string, options: SandboxOptions = {}): Promise<SandboxResult> {
  const python = options.python ?? '/usr/bin/python3';
  const timeoutS = options.timeoutS ?? 10;
  const cpuS = options.cpuS ?? Math.ceil(timeoutS) + 1;
  const memoryBytes = Math.round((options.memoryMb ?? 2048) * 1024 * 1024);
  const fileBytes = Math.round((options.fileMb ?? 64) * 1024 * 1024);
  const maxOutput = options.maxOutput ?? 16 * 1024;
  const iso = options.network === 'sockets-disabled' ? { mode: 'sockets-disabled' as const, prefix: [] } : isolationOf(python);
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-sandbox-'));
  writeFileSync(join(dir, 'program.py'), program);
  writeFileSync(join(dir, 'preamble.py'), PREAMBLE);
  // -I: no user site, no PYTHON* variables, no script directory on sys.path; -B: no .pyc files.
  const argv = [...iso.prefix, python, '-I', '-B', 'preamble.py', String(cpuS), String(memoryBytes), String(fileBytes), iso.mode === 'sockets-disabled' ? '1' : '0'];
  const env: NodeJS.ProcessEnv = {
    PATH: '/usr/local/bin:/usr/bin:/bin', HOME: dir, TMPDIR: dir, LANG: 'C.UTF-8', PYTHONHASHSEED: '0',
    // Numerical libraries otherwise start a thread per core (and reserve address space for each).
    OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1', MKL_NUM_THREADS: '1',
  };
  return new Promise<SandboxResult>((resolve) => {
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[], sizes: { stdout: 0, stderr: 0 } };
    let timedOut = false;
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    };
    const keep = (stream: 'stdout' | 'stderr') => (chunk: Buffer): void => {
      const room = maxOutput - out.sizes[stream];
      if (room > 0) out[stream].push(chunk.subarray(0, room));
      out.sizes[stream] += chunk.length;
    };
    child.stdout.on('data', keep('stdout'));
    child.stderr.on('data', keep('stderr'));
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutS * 1000);
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killGroup();
      rmSync(dir, { recursive: true, force: true });
      const text = (stream: 'stdout' | 'stderr'): string => {
        const s = Buffer.concat(out[stream]).toString('utf8');
        return out.sizes[stream] > maxOutput ? `${s}\n[… ${out.sizes[stream] - maxOutput} more bytes dropped]` : s;
      };
      const stdout = text('stdout');
      const stderr = text('stderr');
      const seconds = (performance.now() - started) / 1000;
      let status: SandboxStatus;
      let reason: string;
      const tail = lastLine(stderr);
      if (spawnError) [status, reason] = ['crashed', `could not start ${argv[0]}: ${spawnError.message}`];
      else if (timedOut) [status, reason] = ['timeout', `wall-clock limit of ${timeoutS} s`];
      else if (signal === 'SIGXCPU' || code === 128 + 24) [status, reason] = ['timeout', `CPU-time limit of ${cpuS} s`];
      else if (code === 0) [status, reason] = ['passed', ''];
      else if (/^MemoryError\b/.test(tail) || /Cannot allocate memory|std::bad_alloc/.test(stderr)) [status, reason] = ['memory', `address-space limit of ${options.memoryMb ?? 2048} MiB (${tail})`];
      else if (signal !== null) [status, reason] = ['crashed', `killed by ${signal}`];
      else if (code !== null && code > 128) [status, reason] = ['crashed', `killed by signal ${code - 128}${tail ? ` (${tail})` : ''}`];
      else [status, reason] = ['failed', tail || `exit status ${code}`];
      resolve({ status, reason, exitCode: code, signal, stdout, stderr, seconds });
    };
    // On exit the group is killed at once (a forked child that outlived the program dies with it), then the pipes
    // drain; a process that left the group (setsid) and still holds them gets half a second, then they are cut.
    child.on('exit', (code, signal) => {
      killGroup();
      const grace = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish(code, signal);
      }, 500);
      child.on('close', () => {
        clearTimeout(grace);
        finish(code, signal);
      });
    });
    child.on('error', (e) => finish(null, null, e));
  });
}

/** Runs programs with at most `concurrency` children at once; results in input order. */
export async function runPythonMany(programs: readonly string[], options: SandboxOptions & { concurrency?: number; onDone?: (done: number, total: number) => void } = {}): Promise<SandboxResult[]> {
  const results = new Array<SandboxResult>(programs.length);
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < programs.length) {
      const i = next++;
      results[i] = await runPython(programs[i]!, options);
      options.onDone?.(++done, programs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, programs.length) }, worker));
  return results;
}
