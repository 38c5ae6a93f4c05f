import type { Redis } from "ioredis";
import { z } from "zod";
import { fleetSpecSchema } from "../../infra/fleet.js";
import { LuaScript } from "../store/scripts.js";
import { fleetKeys } from "./keys.js";

/**
 * Where a worker is in its life, as the actuator drives it:
 * booting (declared running, not yet taking meetings) → active (enabled in Scalelite) → draining (cordoned)
 * → stopped (powered off, still registered) or gone; `resizing` is a drained server whose size is changing.
 * `held` is a server an operator cordoned or panicked: out of the policy's hands until an operator enables it.
 */
export const serverPhaseSchema = z.enum(["booting", "active", "draining", "resizing", "stopped", "held"]);
export type ServerPhase = z.infer<typeof serverPhaseSchema>;

export const serverRecordSchema = z.strictObject({
  phase: serverPhaseSchema,
  /** When the server entered its phase (ms since epoch). */
  since: z.number(),
  /** Its id in Scalelite once registered. */
  scaleliteId: z.string().nullable(),
  bootedAt: z.number().nullable(),
  resizedAt: z.number().nullable(),
  /** Created for the warm pool: once its BBB API answers it is stopped, not enabled. */
  warm: z.boolean().optional(),
  /**
   * Found running in the fleet stack when Redis had lost the fleet's state: `booting` until its BBB answers, but it may
   * have been taking meetings: a stop drains it first. Cleared once it is enabled, drained or started.
   */
  adopted: z.boolean().optional(),
});
export type ServerRecord = z.infer<typeof serverRecordSchema>;

export const fleetStateSchema = z.strictObject({
  /** The spec the next `up` applies; the last applied one is in the fleet stack's outputs. */
  desired: fleetSpecSchema,
  servers: z.record(z.string(), serverRecordSchema),
  /** Suffix of the next server name: names are never reused, so Scalelite ids and audit trails stay unambiguous. */
  nextIndex: z.number().int().min(1),
  /** Set while an `up` runs: found on start with another lease's token, it means that holder died mid-update. */
  updateInFlight: z
    .strictObject({
      token: z.number(),
      startedAt: z.number(),
      /** The shard stacks it runs (scaler/actuator/shards.ts); absent in states written before shards: every shard. */
      stacks: z.array(z.string()).optional(),
    })
    .nullable(),
});
export type FleetState = z.infer<typeof fleetStateSchema>;

/** A write whose fencing token is older than the lease in force: its writer lost the fleet and must stop. */
export class StaleFenceError extends Error {
  constructor(
    readonly fleet: string,
    readonly token: number,
  ) {
    super(`fleet ${fleet}: state write with token ${token} refused, a newer lease holds the fleet`);
    this.name = "StaleFenceError";
  }
}

// KEYS: state, lock. ARGV: token, JSON. Written only while the lock's token is the writer's; `#!lua`: refused whole
// under maxmemory (see scaler/store/scripts.ts).
const fencedSetScript = new LuaScript(`#!lua
local held = redis.call('GET', KEYS[2])
if not held or string.match(held, '^%d+') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
`);

/** The actuator's per-fleet state in Redis, one JSON document, written only under the fleet lease. */
export class FleetStateStore {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {}

  async load(fleet: string): Promise<FleetState | undefined> {
    const text = await this.redis.get(fleetKeys(this.keyPrefix, fleet).state);
    return text === null ? undefined : fleetStateSchema.parse(JSON.parse(text));
  }

  async save(fleet: string, token: number, state: FleetState): Promise<void> {
    const keys = fleetKeys(this.keyPrefix, fleet);
    const written = await fencedSetScript.run(this.redis, [keys.state, keys.lock], [String(token), JSON.stringify(state)]);
    if (written !== 1) throw new StaleFenceError(fleet, token);
  }
}

/** A server enters a phase now; `since` is what the drain and build timeouts count from. */
export function setPhase(record: ServerRecord, phase: ServerRecord["phase"], now: number): void {
  record.phase = phase;
  record.since = now;
}
