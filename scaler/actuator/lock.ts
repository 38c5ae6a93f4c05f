import type { Redis } from "ioredis";
import { fleetKeys } from "../fleet/keys.js";
import { LuaScript } from "../store/scripts.js";

// `#!lua`: under maxmemory Redis refuses the whole script up front (see scaler/store/scripts.ts), never half of it.
// KEYS: lock, fence counter. ARGV: owner, ttl ms. A fresh token per acquisition, increasing forever.
const acquireScript = new LuaScript(`#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('GET', KEYS[1])} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[1], 'PX', ARGV[2])
return {1, tostring(token)}
`);

// KEYS: lock. ARGV: held value, ttl ms (0 = release).
const renewOrReleaseScript = new LuaScript(`#!lua
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`);

/** A lock held by another owner; `holder` is its `<token> <owner>` value. */
export class FleetLockBusyError extends Error {
  constructor(
    readonly fleet: string,
    readonly holder: string,
  ) {
    super(`fleet ${fleet} is locked by ${holder}`);
    this.name = "FleetLockBusyError";
  }
}

/** The lease was lost (expired and possibly taken by another owner): whatever its holder was doing is stale. */
export class FleetLeaseLostError extends Error {
  constructor(
    readonly fleet: string,
    readonly token: number,
  ) {
    super(`lease ${token} on fleet ${fleet} was lost`);
    this.name = "FleetLeaseLostError";
  }
}

export interface FleetLease {
  readonly fleet: string;
  /** The fencing token: larger for every later lease, so a stale holder's writes can be refused. */
  readonly token: number;
  renew(): Promise<void>;
  release(): Promise<void>;
}

/**
 * One `up` per fleet at a time, across scaler processes: a Redis lease with a TTL that its holder renews while it
 * works. A holder that dies stops renewing, so its lease expires and the next process can take over.
 */
export class FleetLock {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    readonly ttlMs: number,
  ) {}

  private lockKey(fleet: string): string {
    return fleetKeys(this.keyPrefix, fleet).lock;
  }

  async acquire(fleet: string, owner: string): Promise<FleetLease> {
    const [acquired, value] = (await acquireScript.run(
      this.redis,
      [this.lockKey(fleet), fleetKeys(this.keyPrefix, fleet).fence],
      [owner, this.ttlMs],
    )) as [number, string];
    if (acquired !== 1) throw new FleetLockBusyError(fleet, value);
    const token = Number(value);
    const held = `${token} ${owner}`;
    const key = this.lockKey(fleet);
    return {
      fleet,
      token,
      renew: async () => {
        if ((await renewOrReleaseScript.run(this.redis, [key], [held, this.ttlMs])) !== 1) throw new FleetLeaseLostError(fleet, token);
      },
      release: async () => {
        await renewOrReleaseScript.run(this.redis, [key], [held, 0]);
      },
    };
  }

  /**
   * Waits for a lease another holder has: a scaler restarted after a crash finds its predecessor's lease, which
   * expires within one TTL since nobody renews it. A live holder keeps it, and this gives up after `maxWaitMs`.
   */
  async acquireWhenFree(fleet: string, owner: string, maxWaitMs: number, onBusy?: (holder: string) => void): Promise<FleetLease> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      try {
        return await this.acquire(fleet, owner);
      } catch (error) {
        if (!(error instanceof FleetLockBusyError) || performance.now() >= deadline) throw error;
        onBusy?.(error.holder);
        await new Promise((resolve) => setTimeout(resolve, Math.max(100, Math.min(this.ttlMs / 10, 2_000))));
      }
    }
  }

  /** The token of the lease now in force, if any: a write fenced with an older token is stale. */
  async currentToken(fleet: string): Promise<number | undefined> {
    const value = await this.redis.get(this.lockKey(fleet));
    return value === null ? undefined : Number(value.split(" ", 1)[0]);
  }
}
