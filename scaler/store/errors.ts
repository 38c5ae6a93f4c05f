/** Redis could not be reached or did not answer in time; the caller may retry once it is back. */
export class StoreUnavailableError extends Error {
  constructor(
    readonly operation: string,
    override readonly cause: unknown,
  ) {
    super(`redis unavailable during ${operation}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "StoreUnavailableError";
  }
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
