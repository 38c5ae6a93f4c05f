import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetLeaseLostError, FleetLock, FleetLockBusyError } from "../../scaler/actuator/lock.js";
import { RedisServer } from "../harness/redis.js";

describe("the fleet lock (real Redis)", () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis(server.url);
  });

  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  it("admits one holder per fleet and refuses the next, naming who holds it", async () => {
    const lock = new FleetLock(redis, "t1:", 60_000);
    const lease = await lock.acquire("prod", "scaler-a");
    await expect(lock.acquire("prod", "scaler-b")).rejects.toThrow(FleetLockBusyError);
    await expect(lock.acquire("prod", "scaler-b")).rejects.toThrow(`locked by ${lease.token} scaler-a`);
    const other = await lock.acquire("staging", "scaler-b");
    expect(other.token).toBeGreaterThan(0);
    await lease.release();
    const next = await lock.acquire("prod", "scaler-b");
    expect(next.token).toBeGreaterThan(lease.token);
  });

  it("lets a dead holder's lease expire; the stale holder can neither renew nor release the new lease", async () => {
    const lock = new FleetLock(redis, "t2:", 150);
    const dead = await lock.acquire("prod", "crashed");
    let successor;
    for (let attempt = 0; successor === undefined; attempt += 1) {
      if (attempt > 200) throw new Error("the lease never expired");
      successor = await lock.acquire("prod", "restarted").catch(async (error: unknown) => {
        if (!(error instanceof FleetLockBusyError)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 25));
        return undefined;
      });
    }
    expect(successor.token).toBeGreaterThan(dead.token);
    await expect(dead.renew()).rejects.toThrow(FleetLeaseLostError);
    await dead.release();
    expect(await lock.currentToken("prod")).toBe(successor.token);
  });

  it("keeps a renewed lease", async () => {
    const lock = new FleetLock(redis, "t3:", 60_000);
    const lease = await lock.acquire("prod", "scaler-a");
    await lease.renew();
    expect(await redis.pttl("t3:fleet:prod:lock")).toBeGreaterThan(30_000);
    expect(await lock.currentToken("prod")).toBe(lease.token);
  });

  it("a standby waits past any deadline while the holder renews, and takes a dead holder's lease as it expires", async () => {
    const lock = new FleetLock(redis, "t4:", 300);
    const leader = await lock.acquire("prod", "leader");
    const holders: string[] = [];
    const standby = lock.acquireWhenFree("prod", "standby", { onBusy: (holder) => holders.push(holder) });
    // The leader renews for three TTLs, then dies: the standby is still waiting, and takes over once the lease ends.
    for (let beat = 0; beat < 9; beat += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await leader.renew();
    }
    const diedAt = performance.now();
    const successor = await standby;
    expect(holders[0]).toBe(`${leader.token} leader`);
    expect(successor.token).toBeGreaterThan(leader.token);
    // Within its TTL of the last renewal, give or take a loaded machine's timer delays.
    expect(performance.now() - diedAt).toBeLessThan(300 + 1_000);
    await expect(leader.renew()).rejects.toThrow(FleetLeaseLostError);
  });

  it("a standby's wait ends when it is stopped", async () => {
    const lock = new FleetLock(redis, "t5:", 60_000);
    await lock.acquire("prod", "leader");
    const stopping = new AbortController();
    const standby = lock.acquireWhenFree("prod", "standby", {
      signal: stopping.signal,
      onBusy: () => stopping.abort(new Error("stopped")),
    });
    await expect(standby).rejects.toThrow("stopped");
  });
});
