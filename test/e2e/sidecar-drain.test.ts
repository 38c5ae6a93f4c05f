import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { workerKeyId } from "../../infra/workerCredentials.js";
import type { Decision } from "../../scaler/policy/types.js";
import { useClosedLoop } from "../harness/closedLoopRig.js";
import { closedLoopPolicy } from "../harness/fleetRig.js";
import type { ManagedProcess } from "../harness/process.js";
import { startWorkerSidecar } from "../harness/workerSidecar.js";
import { eventually } from "../integration/scaler-fixture.js";

const DAY = 86_400_000;
const OPERATOR_TOKEN = randomBytes(24).toString("hex");

function decision(kind: "drain" | "stop" | "enable" | "start", server: string): Decision {
  return { kind, server, reason: `the test ${kind}s ${server}`, inputs: {}, dryRun: false };
}

describe("a fleet worker's own sidecar drains it: the stop waits for its report (real CLI, Redis, Prometheus, sidecar, emulator)", () => {
  let sidecar: ManagedProcess | undefined;
  const previousMasterSecret = process.env.CONFSCALE_BBB_SECRET;
  const rig = useClosedLoop({
    emulator: { timings: { requestQueuedMs: 100, requestRunningMs: 500, bootMs: 1_000 } },
    loop: (emulator) => {
      // The scaler derives its workers' public keys from the fleet's master secret, as in service.
      process.env.CONFSCALE_BBB_SECRET = emulator.cloud.bbbSecret;
      return { policy: closedLoopPolicy(), apiTokens: [{ name: "oscar", role: "operator", token: OPERATOR_TOKEN }] };
    },
  });

  afterAll(async () => {
    if (sidecar?.child.exitCode === null) sidecar.child.kill("SIGCONT");
    await sidecar?.stop();
    if (previousMasterSecret === undefined) delete process.env.CONFSCALE_BBB_SECRET;
    else process.env.CONFSCALE_BBB_SECRET = previousMasterSecret;
  });

  const emulated = (name: string) => [...rig.emulator.cloud.servers.values()].find((server) => server.name === name)!;
  const registration = () => [...rig.emulator.scalelite.servers.values()][0];
  const instance = async () => (await rig.loop.store.listInstances("bbb")).find((entry) => entry.instanceId === "bbb-1");

  it("boots the fleet's worker, whose sidecar checks in with its own key and shows in the fleet status", async () => {
    await rig.loop.actuator.start();
    for (let count = 0; registration()?.state !== "enabled"; count += 1) {
      if (count === 25) throw new Error("bbb-1 was not enabled in Scalelite after 25 periods");
      await rig.loop.period();
    }
    expect(emulated("bbb-1").vmState).toBe("RUNNING");
    // Scalelite's poller finds the enabled server online, and places a meeting on it.
    rig.emulator.scalelite.poll();
    const { meeting } = rig.emulator.scalelite.placeMeeting({ participants: 3, videos: 0, durationMs: DAY });

    sidecar = await startWorkerSidecar({
      emulator: rig.emulator,
      serverName: "bbb-1",
      dir: rig.sandbox.dir,
      scalerUrl: `http://127.0.0.1:${rig.scalerPort}`,
      extraEnv: { CONFSCALE_STATS_INTERVAL_MS: "200", CONFSCALE_POLL_INTERVAL_MS: "200" },
    });
    // It signs with bbb-1's own key, which the scaler accepts only for bbb-1 of fleet bbb.
    expect(sidecar.output()).toContain(`"keyId":"${workerKeyId("bbb", "bbb-1")}"`);
    await eventually(async () => (await instance())?.stats?.meetings === 1, 30_000, "bbb-1's sidecar reporting its meeting");

    await rig.loop.period();
    const status = (await (await fetch(`http://127.0.0.1:${rig.scalerPort}/fleets/bbb`)).json()) as {
      servers: { name: string; phase: string; lastCheckIn: string | null }[];
    };
    expect(status.servers).toEqual([expect.objectContaining({ name: "bbb-1", phase: "active", lastCheckIn: expect.any(String) })]);
    expect(meeting.participants).toBe(3);
  });

  it("takes the drain command back when the server is taken back before its meetings end: the sidecar serves again", async () => {
    await rig.loop.actuator.cycle([decision("drain", "bbb-1")]);
    await eventually(async () => (await instance())?.state === "shutting_down", 30_000, "bbb-1's sidecar draining");

    const enable = await rig.loop.actuator.cycle([decision("enable", "bbb-1")]);
    expect(enable.applied.map((applied) => applied.kind)).toEqual(["enable"]);
    expect(registration()?.state).toBe("enabled");
    // Without the withdrawal the sidecar would drain on, confirm, and run its shutdown hook on a serving server.
    await eventually(async () => (await instance())?.state === "running", 30_000, "bbb-1's sidecar serving again");
    expect(sidecar!.output()).toContain('"event":"drain.cancelled"');
    expect((await instance())?.shutdownRequested).toBe(false);
    const trail = (await rig.loop.store.readAudit("bbb", { instanceId: "bbb-1", limit: 1000 })).map((entry) => entry.kind);
    expect(trail).toContain("shutdown.withdrawn");
    expect(trail).toContain("instance.resumed");
  });

  it("takes the drain command back when an operator enables the draining server through the control API", async () => {
    await rig.loop.actuator.cycle([decision("drain", "bbb-1")]);
    await eventually(async () => (await instance())?.state === "shutting_down", 30_000, "bbb-1's sidecar draining");

    const response = await fetch(`http://127.0.0.1:${rig.scalerPort}/api/v1/fleets/bbb/servers/bbb-1/enable`, {
      method: "POST",
      headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ server: "bbb-1", phase: "active" });
    expect(registration()?.state).toBe("enabled");
    await eventually(async () => (await instance())?.state === "running", 30_000, "bbb-1's sidecar serving again");
    expect((await instance())?.shutdownRequested).toBe(false);
    // The server's trail holds both drains withdrawn (the policy's before, the operator's now) and the operator by name.
    const trail = (await rig.loop.store.readAudit("bbb", { instanceId: "bbb-1", limit: 1000 })).map(
      (entry) => `${entry.kind}:${entry.actor}`,
    );
    expect(trail.filter((entry) => entry.startsWith("shutdown.withdrawn:"))).toHaveLength(2);
    expect(trail.filter((entry) => entry.startsWith("instance.resumed:"))).toHaveLength(2);
    expect(trail).toContain("operator.enable:oscar");
  });

  it("sends the drain command with the cordon, and stops the server only after its sidecar reported its last meeting ended", async () => {
    const drain = await rig.loop.actuator.cycle([decision("drain", "bbb-1")]);
    expect(drain.applied.map((applied) => applied.kind)).toEqual(["drain"]);
    expect(registration()?.state).toBe("cordoned");
    // The command reaches the sidecar in a check-in reply; it starts draining and says so in its reports.
    await eventually(async () => (await instance())?.state === "shutting_down", 30_000, "bbb-1's sidecar draining");
    expect(sidecar!.output()).toContain('"event":"drain.started"');

    // A meeting still runs: BBB holds the stop.
    const busy = await rig.loop.actuator.cycle([decision("stop", "bbb-1")]);
    expect(busy.held.map((held) => held.reason)).toEqual(["1 meeting on the server"]);

    // The meeting ends while the sidecar cannot report it: BBB says zero, but the sidecar has not spoken yet.
    sidecar!.child.kill("SIGSTOP");
    const server = emulated("bbb-1");
    for (const meetingId of [...server.meetings.keys()]) rig.emulator.cloud.endMeeting(server, meetingId);
    const early = await rig.loop.actuator.cycle([decision("stop", "bbb-1")]);
    expect(early.held.map((held) => held.reason)).toEqual(["its sidecar has not yet reported its last meeting ended"]);
    expect(emulated("bbb-1").vmState).toBe("RUNNING");

    sidecar!.child.kill("SIGCONT");
    await eventually(async () => (await instance())?.shutdownConfirmedAt !== undefined, 30_000, "bbb-1's sidecar confirming its drain");
    const stop = await rig.loop.actuator.cycle([decision("stop", "bbb-1")]);
    expect(stop.applied.map((applied) => applied.kind)).toEqual(["stop"]);
    expect(emulated("bbb-1").vmState).toBe("SHUTOFF");
    expect(rig.emulator.cloud.meetingsCut).toBe(0);
    // The drain is over: no command is left to drain the worker again the day it is started.
    expect((await instance())?.shutdownRequested).toBe(false);

    // The server's audit trail, oldest first: drain requested and delivered, the stop held twice, the sidecar's
    // confirmation, and only then the stop.
    const entries = (await rig.loop.store.readAudit("bbb", { instanceId: "bbb-1", limit: 1000 })).reverse();
    const all = entries.map((entry) => entry.kind);
    const trail = all.slice(all.lastIndexOf("shutdown.requested"));
    const order = ["shutdown.requested", "shutdown.delivered", "act.held", "act.held", "shutdown.confirmed", "act.stop"];
    expect(trail.filter((kind) => order.includes(kind))).toEqual(order);
    // Each hold names the decision and the server it kept, as the audit page and `confscale status` show it.
    expect(entries.filter((entry) => entry.kind === "act.held").map((entry) => entry.message)).toEqual(
      expect.arrayContaining([
        "stop bbb-1 held: 1 meeting on the server",
        "stop bbb-1 held: its sidecar has not yet reported its last meeting ended",
      ]),
    );
  });

  it("calls off a launch before it is enabled at once: no wait for its BBB, and its sidecar is not told to drain", async () => {
    const phase = () => rig.loop.actuator.currentState().servers["bbb-1"]?.phase;
    const applied = (report: { applied: Decision[] }) => report.applied.map((entry) => entry.kind);
    // Powered on while still installing: its BBB does not answer, so it is not enabled in Scalelite.
    rig.emulator.cloud.faults.add({ kind: "stuckBooting", count: 1 });
    expect(applied(await rig.loop.actuator.cycle([decision("start", "bbb-1")]))).toEqual(["start"]);
    expect(phase()).toBe("booting");
    const installing = await rig.loop.actuator.cycle([decision("stop", "bbb-1")]);
    expect(installing.held).toEqual([]);
    expect(emulated("bbb-1").vmState).toBe("SHUTOFF");

    // Started again, it boots, its BBB answers and its sidecar (started afresh, as at boot) checks in before it is
    // enabled; the launch is called off then.
    rig.emulator.cloud.faults.add({ kind: "stuckBooting", count: 1 });
    await rig.loop.actuator.cycle([decision("start", "bbb-1")]);
    await sidecar?.stop();
    const restartedAt = Date.now();
    sidecar = await startWorkerSidecar({
      emulator: rig.emulator,
      serverName: "bbb-1",
      dir: rig.sandbox.dir,
      scalerUrl: `http://127.0.0.1:${rig.scalerPort}`,
      extraEnv: { CONFSCALE_STATS_INTERVAL_MS: "200", CONFSCALE_POLL_INTERVAL_MS: "200" },
    });
    rig.emulator.setStuckBooting(emulated("bbb-1").id, false);
    await eventually(async () => rig.emulator.cloud.isServing(emulated("bbb-1")), 30_000, "bbb-1's BBB answering");
    await eventually(
      async () => ((await instance())?.lastReportAt ?? 0) > restartedAt && (await instance())?.state === "running",
      30_000,
      "bbb-1's new sidecar checking in",
    );
    expect(phase()).toBe("booting");
    const calledOff = await rig.loop.actuator.cycle([decision("stop", "bbb-1")]);
    expect(calledOff.held).toEqual([]);
    expect(applied(calledOff)).toEqual(["stop"]);
    expect(emulated("bbb-1").vmState).toBe("SHUTOFF");
    expect((await instance())?.shutdownRequested).toBe(false);
    expect(sidecar.output()).not.toContain('"event":"drain.started"');
  });
});
