import { describe, expect, it } from "vitest";
import { TOKENS, call, groupBody, useSidecarScaler } from "./scaler-fixture.js";

/**
 * What the original jitsi-autoscaler accepts from a stock jitsi-autoscaler-sidecar (REFERENCE §1), with the request
 * bodies that sidecar sends: its InstanceDetails are `{instanceId, instanceType, ...INSTANCE_METADATA}` (so `group` may
 * be absent and is free text), its StatsReport carries `reconfigureComplete: ""` and the status flags, and its shutdown
 * call posts the InstanceDetails once the graceful-shutdown script has finished.
 */
const rig = useSidecarScaler("jitsi/sidecar-key", [["custom-bridgeGroup1", "JVB"]]);

const sidecar = (path: string, body: unknown) => call(rig.scaler.url, "POST", `/sidecar/${path}`, { token: rig.token, body });

/** A stock sidecar's InstanceDetails: INSTANCE_ID, INSTANCE_TYPE, then INSTANCE_METADATA's keys spread in. */
const stockDetails = (instanceId: string, instanceType: string, metadata: Record<string, unknown>) => ({
  instanceId,
  instanceType,
  ...metadata,
});
/** A stock sidecar's StatsReport (stats_reporter.ts's buildStatsReport). */
const stockReport = (instance: Record<string, unknown>, stats: unknown) => ({
  instance,
  stats,
  timestamp: Date.now(),
  shutdownStatus: false,
  shutdownError: false,
  reconfigureError: false,
  reconfigureComplete: "",
  statsError: false,
});

type Untracked = { groups: { id: string; instances: { instanceId: string; instanceType: string }[] }[] };
const untracked = async () => (await call(rig.scaler.url, "GET", "/api/v1/untracked", { token: TOKENS.viewer })).body as Untracked;

describe("a stock jitsi-autoscaler-sidecar's reports, as the original server takes them", () => {
  it("files a report without a group under the group `default`, listed as untracked", async () => {
    const instance = stockDetails("jvb-nogroup", "JVB", { region: "eu-frankfurt-1", cloud: "oracle", hostId: "host-9" });
    expect(await sidecar("poll", instance)).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
    expect(await sidecar("status", stockReport(instance, { stress_level: 0.3, participants: 4 }))).toMatchObject({ status: 200 });
    expect((await untracked()).groups).toContainEqual({
      id: "default",
      instances: [expect.objectContaining({ instanceId: "jvb-nogroup", instanceType: "JVB" })],
    });
  });

  it("accepts a group nobody configured, and lists it as untracked until an operator creates it", async () => {
    const instance = stockDetails("jibri-a", "jibri", { group: "recorders-eu" });
    const idle = { status: { busyStatus: "IDLE", health: { healthStatus: "HEALTHY" } } };
    expect(await sidecar("status", stockReport(instance, idle))).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
    expect((await untracked()).groups.map((group) => group.id)).toContain("recorders-eu");

    const adopted = await call(rig.scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("recorders-eu", "jibri") });
    expect(adopted.status).toBe(201);
    expect((await untracked()).groups.map((group) => group.id)).not.toContain("recorders-eu");
    const report = await call(rig.scaler.url, "GET", "/api/v1/groups/recorders-eu/report", { token: TOKENS.viewer });
    expect(report.body.instances).toEqual([expect.objectContaining({ instanceId: "jibri-a", stress: 0 })]);
  });

  it("takes free-text group names such as custom-bridgeGroup1", async () => {
    const instance = stockDetails("jvb-c1", "JVB", { group: "custom-bridgeGroup1", region: "us-phoenix-1" });
    expect(await sidecar("stats", stockReport(instance, { stress_level: 0.61, participants: 40 }))).toEqual({
      status: 200,
      body: { save: "OK" },
    });
    const report = await call(rig.scaler.url, "GET", "/api/v1/groups/custom-bridgeGroup1/report", { token: TOKENS.viewer });
    expect(report.body.instances).toEqual([expect.objectContaining({ instanceId: "jvb-c1", stress: 0.61 })]);
  });

  it("takes instance types beyond the five it reads stats of (nomad, whisper)", async () => {
    for (const type of ["nomad", "whisper"]) {
      const instance = stockDetails(`${type}-1`, type, { group: "extras" });
      expect(await sidecar("poll", instance), type).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
      expect(await sidecar("status", stockReport(instance, { anything: 1 })), type).toMatchObject({ status: 200 });
    }
    const extras = (await untracked()).groups.find((group) => group.id === "extras");
    expect(extras?.instances.map((instance) => instance.instanceType).sort()).toEqual(["nomad", "whisper"]);
  });

  it("records on /sidecar/shutdown that the instance has finished its graceful shutdown", async () => {
    const instance = stockDetails("jvb-c2", "JVB", { group: "custom-bridgeGroup1" });
    await sidecar("status", stockReport(instance, { stress_level: 0.2 }));
    expect(await sidecar("shutdown", instance)).toEqual({ status: 200, body: { save: "OK" } });
    const report = await call(rig.scaler.url, "GET", "/api/v1/groups/custom-bridgeGroup1/report", { token: TOKENS.viewer });
    const recorded = (report.body.instances as { instanceId: string }[]).find((entry) => entry.instanceId === "jvb-c2");
    expect(recorded).toMatchObject({ state: "shutting_down", shutdownConfirmedAt: expect.any(Number) });
    const audit = await call(rig.scaler.url, "GET", "/api/v1/groups/custom-bridgeGroup1/instances/jvb-c2/audit", { token: TOKENS.viewer });
    expect((audit.body.entries as { kind: string }[]).map((entry) => entry.kind)).toContain("shutdown.confirmed");
  });
});
