/**
 * Redis answers with one of these when it is up but will not do the work now (out of memory under `noeviction`, a
 * read-only replica, a failed snapshot, still loading, busy with a script): the caller may retry later.
 */
const REFUSALS = /\b(OOM|READONLY|MISCONF|NOREPLICAS|MASTERDOWN|LOADING|BUSY)\b/;

function isReply(error: unknown): error is Error {
  return error instanceof Error && error.name === "ReplyError";
}

function isRefusal(error: unknown): boolean {
  return isReply(error) && REFUSALS.test(error.message);
}

/** A Redis error reply as ioredis raises it: from a script's own answer for one of the check-ins it wrote. */
export function replyError(message: string): Error {
  const error = new Error(message);
  error.name = "ReplyError";
  return error;
}

/**
 * What a failed Redis call becomes: an error reply that is the request's own fault stays as it is (a bug: 500); a
 * refusal, a lost connection or a timeout is `StoreUnavailableError` (503).
 */
export function storeFault(operation: string, error: unknown): Error {
  if (isReply(error) && !isRefusal(error)) return error;
  return new StoreUnavailableError(operation, error);
}

/**
 * Redis could not be reached, did not answer in time, or refused the work (out of memory, read-only); the caller may
 * retry once it is back. `reason` says which, for the answer and the readiness probe.
 */
export class StoreUnavailableError extends Error {
  readonly reason: string;

  constructor(
    readonly operation: string,
    override readonly cause: unknown,
  ) {
    const detail = firstLine(cause instanceof Error ? cause.message : String(cause));
    // Answered to callers, who need not learn Redis's address: a refusal is quoted, a lost connection only named.
    const reason = isRefusal(cause) ? `redis refuses writes: ${detail}` : "redis unreachable or not answering in time";
    super(`${reason} (during ${operation}: ${detail})`);
    this.reason = reason;
    this.name = "StoreUnavailableError";
  }
}

function firstLine(text: string): string {
  return (text.split("\n")[0] ?? "").slice(0, 200);
}

/** A request about state that does not allow it; `field` names the input that is wrong. */
export class StoreConflictError extends Error {
  constructor(
    readonly code: "group_not_found" | "group_exists" | "instance_not_found" | "instance_type_mismatch" | "out_of_range",
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "StoreConflictError";
  }
}
