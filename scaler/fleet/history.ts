import type { Redis } from "ioredis";
import { z } from "zod";
import { loadSampleSchema, pastActionSchema, type PolicyHistory, type PolicyOutcome } from "../policy/types.js";
import { LuaScript } from "../store/scripts.js";
import { fleetKeys } from "./keys.js";

/**
 * One period as the policy remembers it: the group's load and the actions taken. Kept apart from the audit trail, so
 * operator calls and check-in audits can never push a recent launch out of the policy's sight.
 */
export const historyEntrySchema = z.strictObject({
  at: z.number(),
  sample: loadSampleSchema,
  actions: z.array(pastActionSchema),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

/** The policy's history of one fleet: appended once per period, read back newest periods first. */
export interface PolicyHistoryStream {
  append(fleet: string, entry: HistoryEntry): Promise<void>;
  /** The newest `count` entries, oldest first. */
  newest(fleet: string, count: number): Promise<HistoryEntry[]>;
}

/** A period's entry from its outcome: dry-run decisions are not actions. */
export function historyEntryOf(outcome: PolicyOutcome): HistoryEntry {
  return {
    at: outcome.at,
    sample: outcome.sample,
    actions: outcome.decisions
      .filter((decision) => !decision.dryRun)
      .map((decision) => ({
        at: outcome.at,
        kind: decision.kind,
        ...(decision.server === undefined ? {} : { server: decision.server }),
        ...(decision.warm === true ? { warm: true } : {}),
      })),
  };
}

/** What the policy reads: the entries' samples and actions, oldest first. */
export function policyHistoryOf(entries: readonly HistoryEntry[]): PolicyHistory {
  return { samples: entries.map((entry) => entry.sample), actions: entries.flatMap((entry) => entry.actions) };
}

/** A write refused because the lease in force is not the writer's: it lost the fleet. */
export class HistoryFenceError extends Error {
  constructor(
    readonly fleet: string,
    readonly token: number | undefined,
  ) {
    super(`fleet ${fleet}: history append with lease token ${token ?? "(none)"} refused, this process does not hold the fleet`);
    this.name = "HistoryFenceError";
  }
}

// KEYS: history, lock. ARGV: token ('' = unfenced), score, member, oldest score kept. `#!lua`: refused whole under
// maxmemory (see scaler/store/scripts.ts).
const appendScript = new LuaScript(`#!lua
if ARGV[1] ~= '' then
  local held = redis.call('GET', KEYS[2])
  if not held or string.match(held, '^%d+') ~= ARGV[1] then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[4])
return 1
`);

export interface RedisPolicyHistoryOptions {
  /** Entries older than this (by their own time) are dropped at each append: the stream is bounded by time. */
  retentionMs: number;
  /** The lease token the writer holds now; an append is refused unless it is the lease in force. Unfenced without. */
  fenceToken?: () => number | undefined;
}

/** The history in Redis, one sorted set per fleet scored by time: it survives restarts and a change of leaseholder. */
export class RedisPolicyHistory implements PolicyHistoryStream {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly options: RedisPolicyHistoryOptions,
  ) {}

  async append(fleet: string, entry: HistoryEntry): Promise<void> {
    const keys = fleetKeys(this.keyPrefix, fleet);
    const fenced = this.options.fenceToken !== undefined;
    const token = this.options.fenceToken?.();
    if (fenced && token === undefined) throw new HistoryFenceError(fleet, token);
    const written = await appendScript.run(
      this.redis,
      [keys.history, keys.lock],
      [token === undefined ? "" : String(token), entry.at, JSON.stringify(entry), entry.at - this.options.retentionMs],
    );
    if (written !== 1) throw new HistoryFenceError(fleet, token);
  }

  async newest(fleet: string, count: number): Promise<HistoryEntry[]> {
    if (count <= 0) return [];
    const members = await this.redis.zrevrange(fleetKeys(this.keyPrefix, fleet).history, 0, count - 1);
    const entries: HistoryEntry[] = [];
    for (const member of members) {
      const parsed = historyEntrySchema.safeParse(JSON.parse(member));
      if (parsed.success) entries.push(parsed.data);
    }
    return entries.reverse();
  }
}

/** The history in memory, for a loop without Redis; bounded by time as the Redis one is. */
export class MemoryPolicyHistory implements PolicyHistoryStream {
  private readonly entries = new Map<string, HistoryEntry[]>();

  constructor(private readonly retentionMs: number) {}

  append(fleet: string, entry: HistoryEntry): Promise<void> {
    const kept = (this.entries.get(fleet) ?? []).filter((old) => old.at >= entry.at - this.retentionMs);
    kept.push(structuredClone(entry));
    kept.sort((a, b) => a.at - b.at);
    this.entries.set(fleet, kept);
    return Promise.resolve();
  }

  newest(fleet: string, count: number): Promise<HistoryEntry[]> {
    const all = this.entries.get(fleet) ?? [];
    return Promise.resolve(count <= 0 ? [] : structuredClone(all.slice(-count)));
  }
}
