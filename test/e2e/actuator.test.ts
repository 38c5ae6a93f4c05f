import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FleetServerNotFoundError, ServerActionConflictError } from "../../scaler/fleet/operator.js";
import { decision, emulatorEndpoints, openEmulatedFleet } from "../harness/fleetRig.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

describe("the actuator: decisions become servers through the fleet stack, with drain and registration (real Redis, CLI, emulator)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
  let rig: Awaited<ReturnType<typeof openEmulatedFleet>>;

  beforeAll(async () => {
    rig = await openEmulatedFleet({
      endpoints: emulatorEndpoints(parts.emulator),
      sandbox: parts.sandbox,
      redisUrl: parts.redis.url,
      now: () => parts.emulator.clock.now(),
      settings: { baseline: 2 },
    });
  });

  afterAll(async () => {
    await rig?.close();
  });

  const view = (name: string) =>
    [...parts.emulator.cloud.servers.values()].map((server) => parts.emulator.serverView(server)).find((server) => server.name === name);
  const registration = (name: string) => {
    const id = rig.actuator.currentState().servers[name]?.scaleliteId;
    return parts.emulator.scalelite.servers.get(id ?? "");
  };
  /** Cycles with no decisions until the servers are registered: their BBB API answers once they booted. */
  async function cycleUntilRegistered(...names: string[]) {
    for (let attempt = 0; attempt < 40; attempt += 1) {
      if (names.every((name) => rig.actuator.currentState().servers[name]?.phase === "active")) return;
      await rig.actuator.cycle([]);
    }
    throw new Error(`not registered: ${names.join(", ")}: ${JSON.stringify(rig.actuator.currentState().servers)}`);
  }

  it("brings an empty fleet to its baseline and registers each server in Scalelite once BBB answers", async () => {
    await rig.actuator.start();
    const first = await rig.actuator.cycle([]);
    expect(
      first.update?.steps
        .filter((step) => step.op === "create")
        .map((step) => step.name)
        .sort(),
    ).toEqual(["bbb-1", "bbb-2"]);
    await cycleUntilRegistered("bbb-1", "bbb-2");
    for (const name of ["bbb-1", "bbb-2"]) {
      expect(view(name)?.vmState).toBe("RUNNING");
      expect(registration(name)).toMatchObject({ state: "enabled", loadMultiplier: 1 });
    }
    const audit = await rig.store.readAudit("bbb");
    expect(audit.map((entry) => entry.kind)).toEqual(expect.arrayContaining(["fleet.up", "registered"]));
  });

  it("creates on demand, grows in place, and never stops a server while a meeting is on it", async () => {
    const created = await rig.actuator.cycle([decision("create")]);
    expect(created.update?.steps.map((step) => `${step.op} ${step.name}`)).toContain("create bbb-3");
    await cycleUntilRegistered("bbb-3");

    const grown = await rig.actuator.cycle([decision("resize", "bbb-1", { targetSize: { cores: 4, ramGb: 16 } })]);
    expect(grown.update?.summary.update).toBe(1);
    expect(view("bbb-1")).toMatchObject({ cores: 4, ram: 16 * 1024, vmState: "RUNNING" });
    // Twice the cores of the default size: Scalelite gives it twice the participants before it counts as busier.
    expect(registration("bbb-1")).toMatchObject({ state: "enabled", loadMultiplier: 0.5 });

    // The policy's placement steering lands in Scalelite; a dry-run change does not.
    const steer = (server: string, loadMultiplier: number, dryRun = false) => ({
      server,
      loadMultiplier,
      reason: "steered",
      inputs: {},
      dryRun,
    });
    const steered = await rig.actuator.cycle([], [steer("bbb-1", 0.8), steer("bbb-3", 1.7, true)]);
    expect(steered.steered).toEqual([{ server: "bbb-1", loadMultiplier: 0.8 }]);
    expect(registration("bbb-1")).toMatchObject({ state: "enabled", loadMultiplier: 0.8 });
    expect(registration("bbb-3")).toMatchObject({ loadMultiplier: 1 });

    parts.emulator.scalelite.poll();
    const bbb2 = view("bbb-2")!;
    const meeting = parts.emulator.cloud.startMeeting(parts.emulator.serverById(bbb2.id), {
      participants: 12,
      videos: 2,
      listenOnly: 0,
      durationMs: 3_600_000,
    });
    const drained = await rig.actuator.cycle([decision("drain", "bbb-2")]);
    expect(drained.applied).toHaveLength(1);
    expect(registration("bbb-2")?.state).toBe("cordoned");

    const raced = await rig.actuator.cycle([decision("stop", "bbb-2")]);
    expect(raced.held[0]?.reason).toBe("1 meeting on the server");
    expect(raced.update).toBeNull();
    expect(view("bbb-2")?.vmState).toBe("RUNNING");
    expect(view("bbb-2")?.meetings).toHaveLength(1);

    parts.emulator.cloud.endMeeting(parts.emulator.serverById(bbb2.id), meeting.meetingId);
    const stopped = await rig.actuator.cycle([decision("stop", "bbb-2")]);
    expect(stopped.update?.summary.update).toBe(1);
    expect(view("bbb-2")?.vmState).toBe("SHUTOFF");
  });

  it("starts a stopped server and takes it back into Scalelite; destroys a drained one and deregisters it", async () => {
    const started = await rig.actuator.cycle([decision("start", "bbb-2")]);
    expect(started.update?.summary.update).toBe(1);
    await cycleUntilRegistered("bbb-2");
    expect(view("bbb-2")?.vmState).toBe("RUNNING");
    expect(registration("bbb-2")?.state).toBe("enabled");

    const scaleliteId = rig.actuator.currentState().servers["bbb-3"]!.scaleliteId!;
    await rig.actuator.cycle([decision("drain", "bbb-3")]);
    const destroyed = await rig.actuator.cycle([decision("destroy", "bbb-3")]);
    expect(destroyed.update?.summary.delete).toBe(1);
    expect(view("bbb-3")).toBeUndefined();
    expect(parts.emulator.scalelite.servers.has(scaleliteId)).toBe(false);
  });

  it("leaves the fleet stack in agreement with the spec: a preview shows no changes", async () => {
    const spec = rig.actuator.currentState().desired;
    const preview = await rig.fleetStack.preview(spec);
    expect(Object.keys(preview)).toEqual(["same"]);
  });

  it("reports machines and registrations the fleet stack does not know, and deletes none of them", async () => {
    const stray = parts.emulator.addRunningServer({ name: "bbb-stray", cores: 2, ram: 8 * 1024 });
    stray.labels.set("confscale:env", "e2e").set("confscale:fleet", "bbb").set("confscale:role", "worker");
    const foreign = parts.emulator.addRunningServer({ name: "someone-elses", cores: 1, ram: 1024 });
    const dangling = parts.emulator.scalelite.add("http://127.0.0.1:9/bigbluebutton/api", parts.emulator.cloud.bbbSecret, 1, "");
    const before = [...parts.emulator.cloud.servers.keys()].sort();

    const report = await rig.actuator.sanity();
    expect(report.untracked).toEqual([{ id: stray.id, name: "bbb-stray" }]);
    expect(report.foreign).toBe(1);
    expect(report.missing).toEqual([]);
    expect(report.danglingRegistrations).toEqual([{ id: dangling.id, url: dangling.url }]);
    expect([...parts.emulator.cloud.servers.keys()].sort()).toEqual(before);
    expect(parts.emulator.cloud.servers.has(foreign.id)).toBe(true);
    expect(parts.emulator.scalelite.servers.has(dangling.id)).toBe(true);
    const audit = await rig.store.readAudit("bbb", { limit: 5 });
    expect(audit.find((entry) => entry.kind === "sanity")?.message).toBe(
      "2 disagreements between the fleet stack, the cloud and Scalelite (nothing deleted)",
    );
  });

  it("holds a server an operator cordons or panics out of the policy's view until an operator enables it", async () => {
    const members = () => rig.actuator.members().map((member) => member.id);
    expect(await rig.actuator.operate("bbb-1", "cordon", "ops")).toEqual({ server: "bbb-1", phase: "held" });
    expect(registration("bbb-1")?.state).toBe("cordoned");
    expect(rig.actuator.heldServers()).toEqual(["bbb-1"]);
    expect(members()).not.toContain("bbb-1");
    // Periods without decisions leave a held server as it is.
    await rig.actuator.cycle([]);
    expect(registration("bbb-1")?.state).toBe("cordoned");
    // Decisions made from a snapshot taken before the cordon reach the actuator after it: they are refused, not applied.
    const late = await rig.actuator.cycle([decision("drain", "bbb-1"), decision("stop", "bbb-1")]);
    expect(late.applied).toHaveLength(0);
    expect(late.held.map((held) => `${held.decision.kind}: ${held.reason}`)).toEqual([
      "drain: held for an operator: out of the policy's hands until an operator enables it",
      "stop: held for an operator: out of the policy's hands until an operator enables it",
    ]);
    expect(registration("bbb-1")?.state).toBe("cordoned");
    expect(view("bbb-1")?.vmState).toBe("RUNNING");

    const bbb1 = parts.emulator.serverById(view("bbb-1")!.id);
    parts.emulator.cloud.startMeeting(bbb1, { participants: 5, videos: 0, listenOnly: 0, durationMs: 3_600_000 });
    await rig.actuator.operate("bbb-1", "panic", "ops");
    expect(view("bbb-1")?.meetings).toHaveLength(0);
    expect(registration("bbb-1")?.state).toBe("disabled");

    expect(await rig.actuator.operate("bbb-1", "enable", "ops")).toEqual({ server: "bbb-1", phase: "active" });
    expect(registration("bbb-1")?.state).toBe("enabled");
    expect(members()).toContain("bbb-1");
    const audit = await rig.store.readAudit("bbb", { limit: 10 });
    expect(audit.filter((entry) => entry.kind.startsWith("operator.")).map((entry) => `${entry.kind} by ${entry.actor}`)).toEqual(
      expect.arrayContaining(["operator.cordon by ops", "operator.panic by ops", "operator.enable by ops"]),
    );

    await expect(rig.actuator.operate("bbb-9", "cordon", "ops")).rejects.toBeInstanceOf(FleetServerNotFoundError);
    await rig.actuator.cycle([decision("drain", "bbb-2")]);
    await rig.actuator.cycle([decision("stop", "bbb-2")]);
    await expect(rig.actuator.operate("bbb-2", "cordon", "ops")).rejects.toThrow(
      new ServerActionConflictError("bbb-2", "cordon", "it is stopped; the policy starts it when the load needs it"),
    );
  });

  it("ignores dry-run decisions", async () => {
    const report = await rig.actuator.cycle([decision("create", undefined, { dryRun: true })]);
    expect(report.applied).toHaveLength(0);
    expect(report.update).toBeNull();
  });
});
