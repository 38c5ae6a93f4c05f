/** What is wrong with one field of a request: the API answers a bad body with these (scaler/api/http.ts). */
export interface FieldProblem {
  field: string;
  message: string;
}

/**
 * Bounds on a request body's JSON beyond its size in bytes: what the store keeps is serialized again
 * (`JSON.stringify` recurses, and a report nested thousands deep overflows its stack), shown on the status page and
 * sent to operators, so a body must be shallow and its members few and short. Every sidecar and control body stays
 * far inside them: a report nests 4 deep, a group spec 3.
 */
export const JSON_LIMITS = { depth: 16, members: 1_000, stringLength: 16 * 1024 } as const;

interface Visit {
  value: unknown;
  path: readonly string[];
}

/** The first place where `value` passes a bound, as the field to name and what is wrong; undefined when none does. */
export function jsonShapeProblem(value: unknown, limits: typeof JSON_LIMITS = JSON_LIMITS): FieldProblem | undefined {
  const pending: Visit[] = [{ value, path: [] }];
  for (let visit = pending.pop(); visit !== undefined; visit = pending.pop()) {
    const { value: current, path } = visit;
    if (typeof current === "string" && current.length > limits.stringLength) {
      return { field: fieldOf(path), message: `longer than ${limits.stringLength} characters` };
    }
    if (typeof current !== "object" || current === null) continue;
    if (path.length >= limits.depth) return { field: fieldOf(path), message: `nested deeper than ${limits.depth} levels` };
    const entries = Array.isArray(current) ? current.map((item, index) => [String(index), item] as const) : Object.entries(current);
    if (entries.length > limits.members) return { field: fieldOf(path), message: `more than ${limits.members} members` };
    for (const [key, member] of entries) {
      if (key.length > limits.stringLength) return { field: fieldOf(path), message: `a key longer than ${limits.stringLength} characters` };
      pending.push({ value: member, path: [...path, key] });
    }
  }
  return undefined;
}

/** A path as the field an answer names (`stats.a.b`), the whole body as `body`; long keys are cut short. */
function fieldOf(path: readonly string[]): string {
  return path.length === 0 ? "body" : path.map((key) => (key.length > 64 ? `${key.slice(0, 64)}…` : key)).join(".");
}
