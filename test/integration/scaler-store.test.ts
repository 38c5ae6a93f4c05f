import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreConflictError } from "../../scaler/store/errors.js";
import { groupSpecSchema, type CheckIn, type GroupSpec } from "../../scaler/store/schemas.js";
import { ScalerStore, connectRedis, type StoreOptions } from "../../scaler/store/store.js";
import { RedisServer } from "../harness/redis.js";

let redis: RedisServer;
const stores: ScalerStore[] = [];
let clock = Date.now();

const OPTIONS: StoreOptions = {
  keyPrefix: "store:",
  instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
  retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 100, instanceAuditSeconds: 3600, commandSeconds: 3600 },
};

async function openStore(overrides: Partial<StoreOptions> = {}): Promise<ScalerStore> {
  const client = connectRedis(redis.url, 2_000);
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  const store = new ScalerStore(client, { ...OPTIONS, ...overrides });
  stores.push(store);
  return store;
}

/** A valid group spec with the policy defaults filled in by the same schema the API uses. */
function spec(overrides: Partial<Omit<GroupSpec, "policy">> = {}): GroupSpec {
  return groupSpecSchema.parse({
    instanceType: "JVB",
    desired: 2,
    allowScheduler: false,
    policy: { min: 1, max: 6, baseline: 1, defaultSize: { cores: 2, ramGb: 8 }, maxSize: { cores: 4, ramGb: 16 } },
    ...overrides,
  });
}

const checkIn = (group: string, instanceId: string, stress: number): CheckIn => ({
  kind: "status",
  details: { instanceId, instanceType: "JVB", group },
  stats: { stress_level: stress },
  stress,
  shuttingDown: false,
  reconfigureError: false,
});

beforeAll(async () => {
  redis = await RedisServer.start();
});

afterAll(async () => {
  for (const store of stores) await store.close();
  await redis?.stop();
});

describe("bounded state under constant check-ins", () => {
  it("keeps the stress series within its point count and the audit within its entry count", async () => {
    const store = await openStore();
    await store.createGroup("busy", spec(), "test");
    for (let round = 0; round < 1_500; round += 1) {
      await store.checkIn(checkIn("busy", `jvb-${round % 30}`, round / 1_500));
      if (round % 3 === 0) await store.appendAudit("busy", { kind: "decision.hold", actor: "decision-loop" }, `jvb-${round % 30}`);
    }
    // Trimming is approximate (whole stream nodes of 100 entries), so the bound is the limit plus one node.
    expect(await store.redis.xlen(store.keys.stress("busy"))).toBeLessThanOrEqual(OPTIONS.retention.stressPoints + 100);
    expect(await store.redis.xlen(store.keys.groupAudit("busy"))).toBeLessThanOrEqual(OPTIONS.retention.auditEntries + 100);
    expect(await store.redis.zcard(store.keys.live("busy"))).toBe(30);
    const series = await store.stressSeries("busy");
    expect(series.at(-1)).toMatchObject({ instanceId: "jvb-29", stress: 1_499 / 1_500 });
    expect(await store.redis.ttl(store.keys.instanceAudit("busy", "jvb-0"))).toBeGreaterThan(0);
  });

  it("drops stress points older than the retention age", async () => {
    const store = await openStore({ keyPrefix: "aged:", now: () => clock });
    await store.createGroup("aged", spec(), "test");
    for (let round = 0; round < 250; round += 1) await store.checkIn(checkIn("aged", "jvb-1", 0.5));
    clock += 2 * 3600 * 1000;
    await store.checkIn(checkIn("aged", "jvb-1", 0.9));
    expect((await store.stressSeries("aged")).map((point) => point.stress)).toEqual([0.9]);
    expect(await store.redis.xlen(store.keys.stress("aged"))).toBeLessThanOrEqual(101);
  });
});

describe("stress points from several processes", () => {
  it("are stamped no earlier than the series' last point, on the scalers' clock, when a later one was written first", async () => {
    // Two processes on one Redis; the scalers' clock is a day behind Redis's own, so a point on Redis's clock shows.
    const base = Date.now() - 24 * 3600 * 1000;
    const ahead = await openStore({ keyPrefix: "writers:", now: () => base + 5 });
    const behind = await openStore({ keyPrefix: "writers:", now: () => base });
    await ahead.createGroup("shared", spec(), "test");
    await ahead.checkIn(checkIn("shared", "jvb-1", 0.3));
    await behind.checkIn(checkIn("shared", "jvb-2", 0.6));
    expect(await behind.stressSeries("shared")).toEqual([
      { at: base + 5, instanceId: "jvb-1", stress: 0.3 },
      { at: base + 5, instanceId: "jvb-2", stress: 0.6 },
    ]);
  });
});

describe("check-ins that arrive together", () => {
  it("are written by a few script calls, each checked and answered on its own", async () => {
    const store = await openStore({ keyPrefix: "together:" });
    await store.createGroup("bridges", spec(), "test");
    await store.createGroup("recorders", spec({ instanceType: "jibri" }), "test");
    await store.checkIn(checkIn("bridges", "jvb-leaving", 0.1));
    await store.requestShutdown("bridges", ["jvb-leaving"], "alice");
    const scriptCalls = async () => Number(/^cmdstat_evalsha:calls=(\d+)/m.exec(await store.redis.info("commandstats"))?.[1] ?? "0");
    const before = await scriptCalls();

    const together = [
      ...Array.from({ length: 100 }, (_, index) => checkIn("bridges", `jvb-${index}`, index / 100)),
      checkIn("nowhere", "jvb-lost", 0.5),
      checkIn("recorders", "jvb-astray", 0.5),
      checkIn("bridges", "jvb-leaving", 0.2),
    ];
    const outcomes = await Promise.allSettled(together.map((report) => store.checkIn(report)));

    expect(
      outcomes
        .slice(0, 100)
        .every((outcome) => outcome.status === "fulfilled" && !outcome.value.shutdown && outcome.value.reconfigure === null),
    ).toBe(true);
    // A group nobody configured is accepted, as jitsi-autoscaler accepts it, and listed as untracked.
    expect(outcomes[100]).toEqual({ status: "fulfilled", value: { shutdown: false, reconfigure: null } });
    expect(outcomes[101]).toMatchObject({ status: "rejected", reason: { code: "instance_type_mismatch" } });
    expect(outcomes[102]).toEqual({ status: "fulfilled", value: { shutdown: true, reconfigure: null } });
    // At most 64 check-ins per script: 103 of them take two calls.
    expect((await scriptCalls()) - before).toBe(2);
    expect(await store.redis.zcard(store.keys.live("bridges"))).toBe(101);
    expect(await store.redis.exists(store.keys.live("recorders"))).toBe(0);
    expect(await store.redis.zcard(store.keys.live("nowhere"))).toBe(1);
    expect((await store.stressSeries("bridges")).length).toBe(102);
    const delivered = (await store.readAudit("bridges", { instanceId: "jvb-leaving" })).find(
      (entry) => entry.kind === "shutdown.delivered",
    );
    expect(delivered).toMatchObject({ actor: "sidecar", instanceId: "jvb-leaving", at: expect.any(Number) });
  });
});

describe("groups", () => {
  it("keeps desired within [min, max] and records every change in the audit", async () => {
    const store = await openStore({ keyPrefix: "groups:" });
    await store.createGroup("web", spec(), "alice");
    await expect(store.createGroup("web", spec(), "alice")).rejects.toMatchObject({ code: "group_exists" });
    await expect(store.setDesired("web", 7, "oscar")).rejects.toBeInstanceOf(StoreConflictError);
    expect(await store.setDesired("web", 5, "oscar")).toEqual({ groupId: "web", from: 2, to: 5 });
    const audit = await store.readAudit("web");
    expect(audit[0]).toMatchObject({ kind: "desired.set", actor: "oscar", details: { from: 2, to: 5 } });
    expect(audit.at(-1)).toMatchObject({ kind: "group.created", actor: "alice" });
  });

  it("moves only groups that allow a scheduler, only in the requested direction", async () => {
    const store = await openStore({ keyPrefix: "full:" });
    await store.createGroup("open-low", spec({ allowScheduler: true, desired: 1 }), "alice");
    await store.createGroup("open-high", spec({ allowScheduler: true, desired: 6 }), "alice");
    await store.createGroup("closed", spec({ allowScheduler: false, desired: 1 }), "alice");
    await store.createGroup("jibri", spec({ allowScheduler: true, desired: 1, instanceType: "jibri" }), "alice");

    const up = await store.fullScaling({ direction: "up", target: 4, instanceType: "JVB" }, "cron");
    expect(up).toEqual([{ groupId: "open-low", from: 1, to: 4 }]);
    const down = await store.fullScaling({ direction: "down", target: 5 }, "cron");
    expect(down).toEqual([{ groupId: "open-high", from: 6, to: 5 }]);
    const toMin = await store.fullScaling({ direction: "down" }, "cron");
    expect(toMin.map((change) => [change.groupId, change.to])).toEqual([
      ["open-high", 1],
      ["open-low", 1],
    ]);
    expect((await store.requireGroup("closed")).desired).toBe(1);
    expect((await store.requireGroup("jibri")).desired).toBe(1);
  });

  it("pauses a group on its own or every group with the global kill switch", async () => {
    const store = await openStore({ keyPrefix: "pause:" });
    await store.createGroup("a", spec(), "alice");
    await store.createGroup("b", spec(), "alice");
    await store.setGroupPaused("a", true, "oscar");
    expect([await store.isPaused("a"), await store.isPaused("b")]).toEqual([true, false]);
    await store.setGlobalPause(true, "oscar");
    expect([await store.isPaused("a"), await store.isPaused("b")]).toEqual([true, true]);
    await store.setGlobalPause(false, "oscar");
    await store.setGroupPaused("a", false, "oscar");
    expect([await store.isPaused("a"), await store.isPaused("b")]).toEqual([false, false]);
  });

  it("turns a provisioning instance into a running one at its first check-in", async () => {
    const store = await openStore({ keyPrefix: "prov:" });
    await store.createGroup("fleet", spec(), "alice");
    await store.registerProvisioning("fleet", "jvb-9", { cloud: "ionos" }, "actuator");
    expect((await store.groupReport("fleet")).counts).toMatchObject({ provisioning: 1, running: 0, total: 1 });
    await store.checkIn(checkIn("fleet", "jvb-9", 0.2));
    expect((await store.groupReport("fleet")).counts).toMatchObject({ provisioning: 0, running: 1, total: 1 });
    expect((await store.readAudit("fleet", { instanceId: "jvb-9" })).map((entry) => entry.kind)).toEqual([
      "instance.joined",
      "instance.provisioning",
    ]);
  });

  it("reads back the load recorded by slot of the week, and nothing for a slot never recorded or not parseable", async () => {
    const store = await openStore({ keyPrefix: "load-profile:" });
    await store.recordLoad("fleet", "tue 10:00", { at: 1_000, cpuCores: 2.5, memoryGb: 9 });
    await store.recordLoad("fleet", "tue 10:00", { at: 2_000, cpuCores: 3, memoryGb: 10 });
    await store.redis.hset(store.keys.loadProfile("fleet"), "tue 10:02", "{not json");
    expect(await store.readLoad("fleet", ["tue 10:00", "tue 10:01", "tue 10:02"])).toEqual([
      { at: 2_000, cpuCores: 3, memoryGb: 10 },
      undefined,
      undefined,
    ]);
  });

  it("deletes a group's state but keeps its audit for a while", async () => {
    const store = await openStore({ keyPrefix: "delete:" });
    await store.createGroup("gone", spec(), "alice");
    await store.checkIn(checkIn("gone", "jvb-1", 0.3));
    await store.recordLoad("gone", "tue 10:00", { at: 1, cpuCores: 2, memoryGb: 8 });
    await store.deleteGroup("gone", "alice");
    expect(await store.getGroup("gone")).toBeUndefined();
    expect(await store.listGroups()).toEqual([]);
    expect(await store.redis.exists(store.keys.stress("gone"), store.keys.live("gone"), store.keys.loadProfile("gone"))).toBe(0);
    expect((await store.readAudit("gone"))[0]).toMatchObject({ kind: "group.deleted", actor: "alice" });
    expect(await store.redis.ttl(store.keys.groupAudit("gone"))).toBeGreaterThan(0);
    // A sidecar still reporting to it is kept as untracked, as for any group nobody configured.
    await store.checkIn(checkIn("gone", "jvb-1", 0.3));
    expect(await store.untrackedGroups()).toEqual([{ id: "gone", instances: [expect.objectContaining({ instanceId: "jvb-1" })] }]);
  });
});
