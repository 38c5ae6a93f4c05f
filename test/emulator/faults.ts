import { z } from "zod";

/**
 * Faults a test can queue through the control API. Each fault fires on the next `count` matching events
 * and then disappears, so a test states exactly how many failures a client must survive.
 */
export const faultSchema = z.discriminatedUnion("kind", [
  /** The next cloud API calls answer 500 without doing anything. */
  z.object({ kind: z.literal("error500"), count: z.number().int().positive().default(1), methods: z.array(z.string()).optional() }),
  /** The next cloud API calls answer 429 with a Retry-After header. */
  z.object({
    kind: z.literal("throttle429"),
    count: z.number().int().positive().default(1),
    retryAfterSeconds: z.number().int().nonnegative().default(1),
    methods: z.array(z.string()).optional(),
  }),
  /** The next cloud API calls get no answer: their connection is reset (as a kept-alive one the server closed). */
  z.object({ kind: z.literal("connectionReset"), count: z.number().int().positive().default(1), methods: z.array(z.string()).optional() }),
  /** The next server creates answer 500, yet the server is created (a client that retries makes a duplicate). */
  z.object({ kind: z.literal("createFailsButHappens"), count: z.number().int().positive().default(1) }),
  /** The next accepted writes end as FAILED requests without effect; with `server`, only writes naming that server. */
  z.object({
    kind: z.literal("requestFails"),
    count: z.number().int().positive().default(1),
    message: z.string().default("Internal error while processing the request"),
    server: z.string().optional(),
  }),
  /** The next servers that power on never finish booting (no metrics, no BBB API). */
  z.object({ kind: z.literal("stuckBooting"), count: z.number().int().positive().default(1) }),
]);

export type Fault = z.infer<typeof faultSchema>;
export type FaultKind = Fault["kind"];

export class FaultQueue {
  private readonly faults: Fault[] = [];

  add(fault: Fault): void {
    this.faults.push({ ...fault });
  }

  clear(): void {
    this.faults.length = 0;
  }

  pending(): readonly Fault[] {
    return this.faults;
  }

  /** Consumes one occurrence of the first fault of `kind` that matches, if any. */
  take<K extends FaultKind>(
    kind: K,
    matches: (fault: Extract<Fault, { kind: K }>) => boolean = () => true,
  ): Extract<Fault, { kind: K }> | undefined {
    const index = this.faults.findIndex((fault) => fault.kind === kind && matches(fault as Extract<Fault, { kind: K }>));
    if (index < 0) return undefined;
    const fault = this.faults[index] as Extract<Fault, { kind: K }>;
    fault.count -= 1;
    if (fault.count <= 0) this.faults.splice(index, 1);
    return fault;
  }
}
