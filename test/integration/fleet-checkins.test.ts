import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../scaler/log.js";
import { storeCheckIns } from "../../scaler/signals/checkins.js";
import { SignalGatherer } from "../../scaler/signals/gather.js";
import { PrometheusClient } from "../../scaler/signals/prometheus.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import type { FleetMember } from "../../scaler/signals/snapshot.js";
import { ScalerStore, connectRedis } from "../../scaler/store/store.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { RedisServer } from "../harness/redis.js";
import { MINUTE, NOW, policy } from "../unit/policy-fixtures.js";

const logger = createLogger("fleet-checkins-test", "silent");
let redis: RedisServer;
let store: ScalerStore;
const clock = { now: NOW };

beforeAll(async () => {
  redis = await RedisServer.start();
  const client = connectRedis(redis.url, 2_000);
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  store = new ScalerStore(client, {
    keyPrefix: "checkins:",
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
    now: () => clock.now,
  });
});

afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

describe("sidecar check-ins reach the fleet's snapshot through the store (real redis-server)", () => {
  it("fills in meetings, participants and streams when BBB and the metrics are missing; silence turns them stale", async () => {
    await store.createGroup(
      "bbb",
      {
        instanceType: "bbb",
        desired: 1,
        allowScheduler: false,
        policy: policy({ max: 4 }),
      },
      "test",
    );
    // The worker's sidecar reports under its hostname, as the rendered sidecar.env names it.
    await store.checkIn({
      kind: "status",
      details: { instanceId: "bbb-1.bbb.example.org", instanceType: "bbb", group: "bbb" },
      stats: { meetings: 3, participants: 41, videos: 7, listeners: 2, stress_level: 0.4 },
      stress: 0.4,
      shuttingDown: false,
      reconfigureError: false,
    });
    const closedPort = await freeLoopbackPort();
    const member: FleetMember = {
      id: "bbb-1",
      size: { cores: 2, ramGb: 8 },
      power: "running",
      bootedAt: NOW - 3_600_000,
      resizedAt: null,
      instance: "bbb-1:9100",
      scaleliteId: "bbb-1",
    };
    const gatherer = new SignalGatherer({
      group: "bbb",
      canPowerOff: true,
      freshForMs: 2 * MINUTE,
      prometheus: new PrometheusClient({ baseUrl: `http://127.0.0.1:${closedPort}`, timeoutMs: 1_000 }),
      scalelite: new ScaleliteClient({ baseUrl: `http://127.0.0.1:${closedPort}/scalelite/api`, secret: "scalelite-secret-0123456789" }),
      bbbOf: () => undefined,
      fleet: () => Promise.resolve([member]),
      checkIns: storeCheckIns(store, "bbb"),
      now: () => clock.now,
      logger,
    });

    clock.now += 30_000;
    const [fresh] = (await gatherer.snapshot()).servers;
    expect(fresh?.cpu.status).toBe("missing");
    expect(fresh?.meetings).toEqual({ value: 3, status: "fresh" });
    expect(fresh?.participants).toEqual({ value: 41, status: "fresh" });
    expect(fresh?.videos).toEqual({ value: 7, status: "fresh" });
    expect(fresh?.stress).toEqual({ value: 0.4, status: "fresh" });
    expect(gatherer.lastCheckInAt("bbb-1")).toBe(NOW);

    // The sidecar falls silent past its instance TTL: the store no longer lists it, the fleet still remembers it.
    clock.now = NOW + 10 * MINUTE;
    expect(await store.listInstances("bbb")).toEqual([]);
    const [silent] = (await gatherer.snapshot()).servers;
    expect(silent?.participants).toEqual({ value: 41, status: "stale" });
    expect(silent?.meetings.status).toBe("stale");
    expect(gatherer.lastCheckInAt("bbb-1")).toBe(NOW);
  });
});
