// UserError: bad input the user can fix (a file, line, field or flag that is wrong, and what was expected).
// The CLI prints its message without a stack trace and exits 1; any other error is a bug and keeps its stack.

export class UserError extends Error {
  override readonly name = 'UserError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}

/** The text of an errno-style error from node:fs (e.g. "ENOENT: no such file or directory"), else its message. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message;
  return String(e);
}
