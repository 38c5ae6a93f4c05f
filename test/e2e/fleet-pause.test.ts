import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { closedLoopPolicy, openClosedLoop } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { PrometheusServer } from "../harness/prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";

// One emulated minute per wall-clock second, as in the closed-loop test; a boot takes forty (within the build timeout), so a new server is still
// booting when the pause comes.
const CLOCK_SCALE = 60;
const MINUTE = 60_000;

describe("pause stops the fleet in the middle of a scale-out; resume continues it (real Redis, Prometheus, CLI, emulator)", () => {
  let emulator: Emulator;
  let redisServer: RedisServer;
  let prometheus: PrometheusServer;
  let sandbox: PulumiSandbox;
  let loop: Awaited<ReturnType<typeof openClosedLoop>>;
  let scalerPort: number;

  beforeAll(async () => {
    emulator = await Emulator.start({
      clock: { kind: "real", scale: CLOCK_SCALE },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 40 * MINUTE },
    });
    redisServer = await RedisServer.start();
    scalerPort = await freeLoopbackPort();
    prometheus = await PrometheusServer.start([
      { job_name: "workers", http_sd_configs: [{ url: `http://127.0.0.1:${scalerPort}/fleets/bbb/targets`, refresh_interval: "1s" }] },
    ]);
    sandbox = await createPulumiSandbox();
    loop = await openClosedLoop({
      emulator,
      sandbox,
      redisUrl: redisServer.url,
      prometheusUrl: prometheus.url,
      policy: closedLoopPolicy({ thresholds: { cpu: { up: 0.65, down: 0.25 }, memory: { up: 0.8, down: 0.4 } } }),
      scalerPort,
      buildTimeoutSeconds: 7_200,
    });
  });

  afterAll(async () => {
    await loop?.controller.stop();
    await loop?.close();
    await prometheus?.stop();
    await emulator?.stop();
    await redisServer?.stop();
    await sandbox?.cleanup();
  });

  const enabled = () => [...emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");
  const fleetStatus = async () =>
    (await (await fetch(`http://127.0.0.1:${scalerPort}/fleets/bbb`)).json()) as {
      paused: { scope: string } | null;
      servers: { name: string; phase: string }[];
    };

  async function periodsUntil(what: string, done: () => boolean, limit = 25): Promise<void> {
    for (let count = 0; count < limit; count += 1) {
      if (done()) return;
      await loop.period();
      emulator.scalelite.poll();
    }
    if (!done()) throw new Error(`${what}: not reached after ${limit} periods`);
  }

  /** Periods while paused: each decides nothing and does nothing, and the booting server stays out of Scalelite. */
  async function pausedPeriods(scope: string): Promise<void> {
    const servers = emulator.cloud.servers.size;
    for (let count = 0; count < 3; count += 1) {
      const period = await loop.period();
      emulator.scalelite.poll();
      expect(period.outcome.decisions).toEqual([]);
      expect(period.outcome.holds.map((hold) => hold.reason)).toEqual([`paused (${scope}): no decisions or actions until resumed`]);
      expect(period.cycle).toMatchObject({ applied: [], update: null, registered: [], steered: [] });
    }
    expect(emulator.cloud.servers.size).toBe(servers);
    expect(enabled()).toHaveLength(1);
    expect((await fleetStatus()).paused).toMatchObject({ scope });
  }

  it(
    "decides and does nothing while the fleet or the whole scaler is paused, and carries on once resumed",
    { timeout: 600_000 },
    async () => {
      await loop.actuator.start();
      await periodsUntil("baseline registered", () => enabled().length === 1);

      // Load rises: the period that decides the scale-out also runs its `up` to the end.
      for (let index = 0; index < 8; index += 1) emulator.scalelite.placeMeeting({ participants: 30, videos: 6, durationMs: 90 * MINUTE });
      await periodsUntil("a scale-out decided", () => loop.periods.some((period) => period.cycle.applied.some((d) => d.kind === "create")));
      expect(emulator.cloud.servers.size).toBe(2);
      expect(enabled()).toHaveLength(1);

      await loop.store.setGroupPaused("bbb", true, "operator");
      await pausedPeriods("fleet");
      await loop.store.setGroupPaused("bbb", false, "operator");
      await loop.store.setGlobalPause(true, "operator");
      await pausedPeriods("global");

      await loop.store.setGlobalPause(false, "operator");
      await periodsUntil("the new server taking meetings", () => enabled().length === 2);
      expect((await fleetStatus()).paused).toBeNull();
      const kinds = (await loop.store.readAudit("bbb", { limit: 1000 })).map((entry) => entry.kind);
      expect(kinds).toEqual(expect.arrayContaining(["fleet.paused", "fleet.resumed"]));
    },
  );
});
