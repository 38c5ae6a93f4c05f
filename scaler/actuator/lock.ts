import type { Redis } from "ioredis";
import { setTimeout as sleep } from "node:timers/promises";
import { fleetKeys } from "../fleet/keys.js";
import { LuaScript } from "../store/scripts.js";

export interface WaitOptions {
  maxWaitMs?: number;
  signal?: AbortSignal;
  /** Each time the lock is found held, with its `<token> <owner>`. */
  onBusy?: (holder: string) => void;
  /** Each time Redis could not be asked; the wait goes on. */
  onUnavailable?: (error: unknown) => void;
}

// `#!lua`: under maxmemory Redis refuses the whole script up front (see scaler/store/scripts.ts), never half of it.
// KEYS: lock, fence counter. ARGV: owner, ttl ms. A fresh token per acquisition, increasing forever. A busy lock
// answers its holder and the ms its lease has left, so a standby can wait exactly until it would expire.
const acquireScript = new LuaScript(`#!lua
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])} end
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

/** A lock held by another owner; `holder` is its `<token> <owner>` value, `remainingMs` what its lease has left. */
export class FleetLockBusyError extends Error {
  constructor(
    readonly fleet: string,
    readonly holder: string,
    readonly remainingMs?: number,
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
  /** `performance.now()` when the acquisition was sent: the lease lasts at least a TTL from then. */
  readonly acquiredAt: number;
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
    const acquiredAt = performance.now();
    const [acquired, value, remainingMs] = (await acquireScript.run(
      this.redis,
      [this.lockKey(fleet), fleetKeys(this.keyPrefix, fleet).fence],
      [owner, this.ttlMs],
    )) as [number, string, number?];
    if (acquired !== 1) throw new FleetLockBusyError(fleet, value, remainingMs);
    const token = Number(value);
    const held = `${token} ${owner}`;
    const key = this.lockKey(fleet);
    return {
      fleet,
      token,
      acquiredAt,
      renew: async () => {
        if ((await renewOrReleaseScript.run(this.redis, [key], [held, this.ttlMs])) !== 1) throw new FleetLeaseLostError(fleet, token);
      },
      release: async () => {
        await renewOrReleaseScript.run(this.redis, [key], [held, 0]);
      },
    };
  }

  /**
   * Waits for a lease another holder has: a scaler restarted after a crash, or a standby scaler, finds another's
   * lease, which expires within one TTL once nobody renews it. Each try sleeps until the lease in force would expire,
   * so a dead holder is succeeded a few ms after its lease ends. Gives up after `maxWaitMs` (Infinity: a standby
   * waits as long as the holder lives) or when `signal` aborts. Redis unreachable (a failover) is waited out too.
   */
  async acquireWhenFree(fleet: string, owner: string, options: WaitOptions = {}): Promise<FleetLease> {
    const deadline = performance.now() + (options.maxWaitMs ?? Infinity);
    for (;;) {
      options.signal?.throwIfAborted();
      let pauseMs: number;
      try {
        return await this.acquire(fleet, owner);
      } catch (error) {
        if (performance.now() >= deadline) throw error;
        if (error instanceof FleetLockBusyError) {
          options.onBusy?.(error.holder);
          pauseMs = Math.min(Math.max((error.remainingMs ?? 0) + 5, 10), this.ttlMs);
        } else {
          options.onUnavailable?.(error);
          pauseMs = Math.max(100, Math.min(this.ttlMs / 10, 1_000));
        }
      }
      await sleep(Math.min(pauseMs, Math.max(0, deadline - performance.now())), undefined, { signal: options.signal }).catch(
        () => undefined,
      );
    }
  }

  /** The token of the lease now in force, if any: a write fenced with an older token is stale. */
  async currentToken(fleet: string): Promise<number | undefined> {
    const value = await this.redis.get(this.lockKey(fleet));
    return value === null ? undefined : Number(value.split(" ", 1)[0]);
  }
}
