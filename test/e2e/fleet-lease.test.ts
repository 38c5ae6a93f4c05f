import { Redis } from "ioredis";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetLock, FleetLockBusyError } from "../../scaler/actuator/lock.js";
import type { Decision } from "../../scaler/policy/types.js";
import { KEY_PREFIX, emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

// Long enough to outlast the event-loop pauses of the in-process Pulumi program on a loaded machine; a renewal every
// 5 s, so Redis is paused for 2 s at a time until one of them times out (after 1 s).
const LEASE_TTL_MS = 15_000;
const COMMAND_TIMEOUT_MS = 1_000;

const create: Decision = { kind: "create", reason: "test: create", inputs: {}, dryRun: false };

describe("the fleet lease survives a failed renewal and still fences a stale holder (real Redis, CLI, emulator)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
  let admin: Redis;
  let rig: Awaited<ReturnType<typeof openEmulatedFleet>>;
  const events: { event?: string; token?: number }[] = [];
  const waiters: { event: string; resolve: () => void }[] = [];
  const logged = (event: string) => new Promise<void>((resolve) => waiters.push({ event, resolve }));

  beforeAll(async () => {
    admin = new Redis(parts.redis.url);
    const log = pino(
      { level: "info", base: undefined },
      {
        write: (line: string) => {
          const entry = JSON.parse(line) as { event?: string; token?: number };
          events.push(entry);
          for (const waiter of waiters.filter((candidate) => entry.event?.startsWith(candidate.event))) waiter.resolve();
        },
      },
    );
    rig = await openEmulatedFleet({
      endpoints: emulatorEndpoints(parts.emulator),
      sandbox: parts.sandbox,
      redisUrl: parts.redis.url,
      leaseTtlMs: LEASE_TTL_MS,
      commandTimeoutMs: COMMAND_TIMEOUT_MS,
      log,
    });
  });

  afterAll(async () => {
    await rig?.close();
    admin?.disconnect();
  });

  it(
    "a renewal that times out while Redis is paused for 2 s does not stall the fleet: the next period acts",
    { timeout: 180_000 },
    async () => {
      await rig.actuator.start();
      let failed = false;
      void logged("fleet.lease_").then(() => (failed = true));
      while (!failed) {
        await admin.call("CLIENT", "PAUSE", "2000", "ALL");
        // Answered once the pause is over.
        await admin.ping();
      }
      // The next period comes a lease's life later, as it does when the period is as long as the lease.
      await new Promise((resolve) => setTimeout(resolve, LEASE_TTL_MS + 500));

      const report = await rig.actuator.cycle([create]);
      expect(report.applied.map((decision) => decision.kind)).toEqual(["create"]);
      expect(report.update?.steps.map((step) => `${step.op} ${step.name}`)).toContain("create bbb-1");
      expect(events.some((entry) => entry.event === "fleet.lease_renewal_failed")).toBe(true);
    },
  );

  it(
    "a holder whose lease another scaler took is refused, writes nothing, and takes the lease again once it is free",
    { timeout: 180_000 },
    async () => {
      const stateKey = `${KEY_PREFIX}fleet:bbb:state`;
      const before = await admin.get(stateKey);
      // The lease expired and another scaler took it.
      await admin.del(`${KEY_PREFIX}fleet:bbb:lock`);
      const other = await new FleetLock(admin, KEY_PREFIX, 60_000).acquire("bbb", "other-scaler");

      await expect(rig.actuator.cycle([create])).rejects.toThrow(FleetLockBusyError);
      expect(await admin.get(stateKey)).toBe(before);

      await other.release();
      const report = await rig.actuator.cycle([create]);
      expect(report.update?.steps.map((step) => `${step.op} ${step.name}`)).toContain("create bbb-2");
      const retaken = events.find((entry) => entry.event === "fleet.lease_reacquired");
      expect(retaken?.token).toBeGreaterThan(other.token);
    },
  );
});
