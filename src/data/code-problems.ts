// Builds a HumanEval-format problem set from real code that a code model trained on the stdlib-code split has not
// seen: top-level functions with doctest examples in the held-out files (the fixed val rule of stdlib-code.ts,
// FNV-1a-32(path relative to its root) mod 100 < 5) of the Python standard library and of Debian's python3-*
// packages (/usr/lib/python3/dist-packages). Per function: prompt = the module's imports (relative ones made
// absolute) + `from module import` of the module-level names the body and the examples use + the decorators, signature and docstring;
// canonical_solution = the real body; test = check(candidate) running the docstring's examples with doctest against
// the candidate (also where an example imports the function from its package). Python's own ast module does the
// parsing (a child /usr/bin/python3). verifyProblems keeps those whose canonical solution passes and whose stub body
// fails, running them through the caller's executor (scripts/code-problems.mjs: the sandbox). Not the evaluator
// (src/eval/code-exec.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isValFile, pythonFiles, stdlibFiles, STDLIB_SPLIT_RULE } from './stdlib-code.js';
import { UserError } from '../util/errors.js';

export interface CandidateProblem {
  task_id: string;
  prompt: string;
  canonical_solution: string;
  test: string;
  entry_point: string;
  /** Source file and line of the function. */
  source: string;
}

/** The stop strings a completion is cut at (code-exec's defaults): a canonical body holding one is dropped. */
export const COMPLETION_STOPS = ['\ndef ', '\nclass ', '\nif __name__', '\nprint(', '\n#'];

/** The held-out .py files of a package root, by the stdlib-code val rule on the path relative to it. */
export function heldOutFiles(root: string): { path: string; rel: string }[] {
  return existsSync(root) ? pythonFiles(root).filter((f) => isValFile(f.rel)) : [];
}

const EXTRACT = String.raw`
import ast, doctest, json, sys

STOPS = json.loads(sys.argv[1])
MAX_BODY = int(sys.argv[2])
TEST = '''import doctest as _doctest

_EXAMPLES = %r


def check(candidate):
    # Examples that import the function (>>> from pkg import f) must get the candidate too: every module
    # attribute bound to the original function is rebound to it.
    import importlib, sys
    try:
        original = getattr(importlib.import_module(%r), %r)
    except Exception:
        original = None
    if original is not None and original is not candidate:
        for m in list(sys.modules.values()):
            d = getattr(m, '__dict__', None)
            if isinstance(d, dict):
                for k, v in list(d.items()):
                    if v is original:
                        d[k] = candidate
    globs = dict(globals())
    globs[%r] = candidate
    test = _doctest.DocTestParser().get_doctest(_EXAMPLES, globs, %r, None, 0)
    runner = _doctest.DocTestRunner(verbose=False, optionflags=_doctest.ELLIPSIS | _doctest.NORMALIZE_WHITESPACE)
    report = []
    runner.run(test, out=report.append, clear_globs=False)
    assert runner.tries > 0, 'no examples ran'
    assert runner.failures == 0, ''.join(report)[-2000:]
'''

def absolute(node, module, is_pkg):
    # from .x import y inside package p  ->  from p.x import y
    if not isinstance(node, ast.ImportFrom) or node.level == 0:
        return node
    parts = module.split('.') if is_pkg else module.split('.')[:-1]
    up = node.level - 1
    if up > len(parts):
        return None
    base = parts[:len(parts) - up]
    name = '.'.join(base + ([node.module] if node.module else []))
    return ast.ImportFrom(module=name, names=node.names, level=0)

def bound_names(node):
    out = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        out.add(node.name)
    elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    out.add(n.id)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for a in node.names:
            out.add((a.asname or a.name).split('.')[0])
    return out

drops = {}
def drop(why):
    drops[why] = drops.get(why, 0) + 1

for item in json.load(sys.stdin):
    path, module, source = item['path'], item['module'], item['source']
    try:
        text = open(path, encoding='utf-8').read()
        tree = ast.parse(text)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        continue
    lines = text.splitlines(keepends=True)
    is_pkg = path.endswith('__init__.py')
    imports, imported, defined = [], set(), set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            a = absolute(node, module, is_pkg)
            if a is not None:
                imports.append(ast.unparse(a))
                imported |= bound_names(node)
        else:
            defined |= bound_names(node)
    future = [i for i in imports if i.startswith('from __future__')]
    imports = future + [i for i in imports if not i.startswith('from __future__')]
    for fn in tree.body:
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        doc = ast.get_docstring(fn)
        if not doc or '>>>' not in doc:
            continue
        if len(fn.body) < 2:
            drop('no body after the docstring'); continue
        first_line = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
        doc_end = fn.body[0].end_lineno
        body_start = fn.body[1].lineno
        if fn.body[0].lineno == fn.lineno or body_start <= doc_end:
            drop('docstring shares a line with code'); continue
        # Comments between the docstring and the first statement belong to the solution.
        prompt_fn = ''.join(lines[first_line - 1:doc_end])
        body = ''.join(lines[doc_end:fn.end_lineno])
        if not body.endswith('\n'):
            body += '\n'
        if len(body) > MAX_BODY:
            drop('body longer than %d characters' % MAX_BODY); continue
        if any(s in body for s in STOPS):
            drop('body holds a stop string'); continue
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        # Names the examples use (>>> take(4, t)) come from the module too.
        for ex in doctest.DocTestParser().get_examples(doc):
            try:
                used |= {n.id for n in ast.walk(ast.parse(ex.source)) if isinstance(n, ast.Name)}
            except SyntaxError:
                pass
        helpers = sorted(n for n in used & defined if n != fn.name and n not in imported)
        header = list(imports)
        if helpers:
            header.append('from %s import %s' % (module, ', '.join(helpers)))
        prompt = ('\n'.join(header) + '\n\n\n' if header else '') + prompt_fn
        print(json.dumps({
            'task_id': '%s/%s.%s' % (source, module, fn.name),
            'prompt': prompt,
            'canonical_solution': body,
            'test': TEST % (doc, module, fn.name, fn.name, fn.name),
            'entry_point': fn.name,
            'source': '%s:%d' % (path, fn.lineno),
        }))
print(json.dumps({'drops': drops}))
`;

export interface VerifyResult {
  kept: CandidateProblem[];
  /** Problems left out, by reason. */
  dropped: Record<string, number>;
}

/**
 * Keeps the problems whose canonical solution passes and whose stub body (raise NotImplementedError, at the body's
 * indentation) fails, so every kept test runs and calls the function. `run` executes (problem, completion) pairs
 * as HumanEval does (the sandbox, passed in: eval sits above data) and returns each one's status.
 */
export async function verifyProblems(problems: readonly CandidateProblem[], run: (pairs: { problem: CandidateProblem; completion: string }[]) => Promise<string[]>): Promise<VerifyResult> {
  const stub = (p: CandidateProblem): string => `${/^[ \t]*/.exec(p.canonical_solution)![0] || '    '}raise NotImplementedError\n`;
  const statuses = await run(problems.flatMap((problem) => [{ problem, completion: problem.canonical_solution }, { problem, completion: stub(problem) }]));
  const kept: CandidateProblem[] = [];
  const dropped: Record<string, number> = {};
  problems.forEach((p, i) => {
    const [canonical, stubbed] = [statuses[2 * i]!, statuses[2 * i + 1]!];
    const why = canonical !== 'passed' ? `canonical ${canonical}` : stubbed === 'passed' ? 'stub passes' : null;
    if (why) dropped[why] = (dropped[why] ?? 0) + 1;
    else kept.push(p);
  });
  return { kept, dropped };
}

/** A dotted module name from a path relative to its root (a/b/__init__.py → a.b). */
export function moduleName(rel: string): string {
  return rel.replace(/\.py$/, '').replace(/\/__init__$/, '').split('/').join('.');
}

export interface ExtractResult {
  problems: CandidateProblem[];
  /** Functions with examples that were left out, by reason. */
  drops: Record<string, number>;
  files: number;
}

/** Extracts candidate problems from the held-out files of each root (source name → directory). */
export function extractProblems(roots: Record<string, { path: string; rel: string }[]>, python = '/usr/bin/python3', maxBody = 1500): ExtractResult {
  const items = Object.entries(roots).flatMap(([source, files]) => files.map((f) => ({ path: f.path, module: moduleName(f.rel), source })));
  const r = spawnSync(python, ['-I', '-c', EXTRACT, JSON.stringify(COMPLETION_STOPS), String(maxBody)], { input: JSON.stringify(items), encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.error) throw new UserError(`code-problems: could not run ${python} (${r.error.message})`);
  if (r.status !== 0) throw new UserError(`code-problems: the extractor failed: ${r.stderr.trim().split('\n').pop() ?? ''}`);
  const lines = r.stdout.trim().split('\n');
  const last = JSON.parse(lines.pop()!) as { drops: Record<string, number> };
  return { problems: lines.filter((l) => l !== '').map((l) => JSON.parse(l) as CandidateProblem), drops: last.drops, files: items.length };
}

/** The default sources: the standard library's and Debian's python3-* packages' held-out files. */
export function defaultRoots(): Record<string, { path: string; rel: string }[]> {
  return {
    stdlib: stdlibFiles().filter((f) => isValFile(f.rel)),
    'dist-packages': heldOutFiles('/usr/lib/python3/dist-packages'),
  };
}

export const HELD_OUT_RULE = `${STDLIB_SPLIT_RULE} (dist-packages: the same rule on the path relative to /usr/lib/python3/dist-packages/)`;
