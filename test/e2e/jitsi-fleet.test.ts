import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JitsiFleet, JitsiPeriodReport } from "../../scaler/actuator/jitsiFleet.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";
import { OPERATOR_TOKEN, openJitsiRig } from "../harness/jitsiRig.js";
import { call, eventually } from "../integration/scaler-fixture.js";

const HOUR = 3_600_000;
/** The groups' scalePeriod: the test moves the scaler's clock by one period per step. */
const PERIOD_S = 10;
/** Each test runs the engine a few times on a loaded box. */
const LONG = 600_000;

describe("Jitsi groups scaled by their sidecars' check-ins (real CLI, Redis, scaler HTTP, emulated cloud and sidecars)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 100, requestRunningMs: 300, bootMs: 500 } });
  let rig: Awaited<ReturnType<typeof openJitsiRig>>;
  let bridges: JitsiFleet;
  let recorders: JitsiFleet;

  beforeAll(async () => {
    rig = await openJitsiRig({ emulator: parts.emulator, sandbox: parts.sandbox, redisUrl: parts.redis.url });
  });

  afterAll(async () => {
    await rig?.close();
  });

  const server = (id: string | undefined) => (id === undefined ? undefined : parts.emulator.cloud.servers.get(id));
  const machine = (fleet: JitsiFleet, name: string) => fleet.machines().find((entry) => entry.name === name);
  const idOf = (fleet: JitsiFleet, name: string) => machine(fleet, name)!.id!;

  /** Starts the emulated sidecar of every machine of the fleet that has booted and has none yet. */
  async function startSidecars(fleet: JitsiFleet, instanceType: string): Promise<void> {
    for (const { id } of fleet.machines()) {
      if (id === undefined || parts.emulator.sidecarOf(id) !== undefined) continue;
      await eventually(async () => parts.emulator.cloud.isServing(server(id)!), 30_000, `${id} booting`);
      parts.emulator.startSidecar(id, { scalerUrl: rig.url, group: fleet.groupId, instanceType, intervalMs: 100 });
    }
  }

  /** One period later: the clock moves, every machine's sidecar still running reports again, and the fleet's period runs. */
  async function step(fleet: JitsiFleet): Promise<JitsiPeriodReport> {
    rig.advance(PERIOD_S * 1000);
    const since = rig.now();
    // A sidecar that has confirmed its shutdown has stopped (and is powering its machine off).
    const done = new Set(
      (await rig.store.listInstances(fleet.groupId)).flatMap((i) => (i.shutdownConfirmedAt === undefined ? [] : [i.instanceId])),
    );
    const reporting = fleet
      .machines()
      .flatMap(({ id }) =>
        id !== undefined && !done.has(id) && parts.emulator.sidecarOf(id) !== undefined && server(id)?.vmState === "RUNNING" ? [id] : [],
      );
    await eventually(
      async () => {
        const seen = new Set((await rig.store.stressSeries(fleet.groupId, since)).map((point) => point.instanceId));
        return reporting.every((id) => seen.has(id));
      },
      30_000,
      `a report from ${reporting.join(", ")}`,
    );
    return fleet.period();
  }

  /** Steps until the autoscaler (or whoever) changes something, at most `limit` periods. */
  async function stepUntil(fleet: JitsiFleet, done: (report: JitsiPeriodReport) => boolean, limit = 8): Promise<JitsiPeriodReport> {
    for (let count = 0; count < limit; count += 1) {
      const report = await step(fleet);
      if (done(report)) return report;
    }
    throw new Error(`nothing happened in ${limit} periods`);
  }

  const trail = async (group: string, instanceId: string) =>
    (await rig.store.readAudit(group, { instanceId, limit: 1000 })).reverse().map((entry) => entry.kind);

  it(
    "launches a JVB group's first bridge on its own stack, which checks in through the sidecar protocol",
    async () => {
      ({ fleet: bridges } = await rig.openGroup({
        name: "bridges",
        type: "JVB",
        size: { cores: 2, ramGb: 4 },
        scaling: {
          minDesired: 1,
          maxDesired: 4,
          desiredCount: 1,
          scaleUpThreshold: 0.5,
          scaleDownThreshold: 0.2,
          scalePeriod: PERIOD_S,
          scaleUpPeriodsCount: 2,
          scaleDownPeriodsCount: 2,
        },
        enableScheduler: true,
        gracePeriodTTLSec: 2 * PERIOD_S,
        gracefulShutdownSeconds: 3600,
      }));
      const first = await bridges.period();
      expect(first.actions).toMatchObject([{ kind: "launch", count: 1 }]);
      expect(first.update?.summary.create).toBeGreaterThan(0);
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1"]);
      const id = idOf(bridges, "jitsi-bridges-1");
      // Ownership labels name the fleet `jitsi-bridges`.
      expect([...(server(id)?.labels.values() ?? [])]).toContain("jitsi-bridges");
      // Its own sidecar key is published for the token check (scaler/api/asap.ts): the stock sidecar's tokens pass.
      expect(await rig.store.redis.hkeys(rig.store.keys.jitsiSidecarKeys())).toEqual([
        expect.stringMatching(/^confscale-jitsi\/jitsi-bridges\/jitsi-bridges-1\/[0-9a-f]{16}$/),
      ]);

      await startSidecars(bridges, "JVB");
      await step(bridges);
      expect(machine(bridges, "jitsi-bridges-1")?.phase).toBe("active");
      const report = await call(rig.url, "GET", "/api/v1/groups/bridges/report", { token: OPERATOR_TOKEN });
      expect(report.body.instances).toEqual([expect.objectContaining({ instanceId: id, state: "running", instanceType: "JVB" })]);
    },
    LONG,
  );

  it(
    "launches a bridge once the group's average stress held above its threshold for scaleUpPeriodsCount periods",
    async () => {
      parts.emulator.startConference(idOf(bridges, "jitsi-bridges-1"), { participants: 60, durationMs: HOUR });
      const up = await stepUntil(bridges, (report) => report.autoscale?.kind === "change");
      expect(up.autoscale).toMatchObject({ kind: "change", direction: "up", desired: 2, figures: [0.6, 0.6] });
      expect(up.actions).toMatchObject([{ kind: "launch", count: 1 }]);
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1", "jitsi-bridges-2"]);
      expect(server(idOf(bridges, "jitsi-bridges-2"))?.vmState).toBe("RUNNING");

      await startSidecars(bridges, "JVB");
      await step(bridges);
      expect(bridges.machines().map((entry) => entry.phase)).toEqual(["active", "active"]);
    },
    LONG,
  );

  it(
    "when stress falls, sends the lowest-loaded bridge the shutdown command and destroys it only after it reports its graceful shutdown done",
    async () => {
      const [one, two] = [idOf(bridges, "jitsi-bridges-1"), idOf(bridges, "jitsi-bridges-2")];
      for (const meeting of [...server(one)!.meetings.keys()]) parts.emulator.cloud.endMeeting(server(one)!, meeting);
      parts.emulator.startConference(one, { participants: 10, durationMs: HOUR });
      const last = parts.emulator.startConference(two, { participants: 5, durationMs: HOUR });

      const down = await stepUntil(bridges, (report) => report.autoscale?.kind === "change");
      expect(down.autoscale).toMatchObject({ kind: "change", direction: "down", desired: 1 });
      expect(down.actions).toMatchObject([{ kind: "shutdown", name: "jitsi-bridges-2", instanceId: two }]);

      // The command rides the next check-in reply; the bridge runs its graceful shutdown while its conference goes on.
      await eventually(async () =>
        (await rig.store.listInstances("bridges")).some((i) => i.instanceId === two && i.state === "shutting_down"),
      );
      for (let count = 0; count < 3; count += 1) {
        const held = await step(bridges);
        expect(held.actions).toEqual([]);
      }
      expect(server(two)?.vmState).toBe("RUNNING");
      expect(machine(bridges, "jitsi-bridges-2")?.phase).toBe("draining");

      // The conference ends: the sidecar reports on /sidecar/shutdown, and only then is the machine destroyed.
      parts.emulator.cloud.endMeeting(server(two)!, last.meetingId);
      await eventually(async () =>
        (await rig.store.listInstances("bridges")).some((i) => i.instanceId === two && i.shutdownConfirmedAt !== undefined),
      );
      const gone = await step(bridges);
      expect(gone.actions).toMatchObject([
        { kind: "destroy", name: "jitsi-bridges-2", reason: expect.stringContaining("graceful shutdown done") },
      ]);
      expect(gone.update?.summary.delete).toBeGreaterThan(0);
      expect(server(two)).toBeUndefined();
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1"]);

      const order = ["shutdown.requested", "shutdown.delivered", "shutdown.confirmed", "act.destroy"];
      expect((await trail("bridges", two)).filter((kind) => order.includes(kind))).toEqual(order);
    },
    LONG,
  );

  it(
    "follows an operator's PUT desired at once and holds the autoscaler off for the grace period",
    async () => {
      const put = await call(rig.url, "PUT", "/api/v1/groups/bridges/desired", { token: OPERATOR_TOKEN, body: { desired: 3 } });
      expect(put).toMatchObject({ status: 200, body: { from: 1, to: 3 } });
      // Stress is low (0.1): the autoscaler would scale in, but the operator's word holds for the grace period.
      const launched = await step(bridges);
      expect(launched.autoscale).toMatchObject({ kind: "hold", reason: expect.stringContaining("desired changed") });
      expect(launched.actions).toMatchObject([{ kind: "launch", count: 2 }]);
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1", "jitsi-bridges-3", "jitsi-bridges-4"]);
      await startSidecars(bridges, "JVB");
      const fresh = [idOf(bridges, "jitsi-bridges-3"), idOf(bridges, "jitsi-bridges-4")];
      await eventually(async () => {
        const live = await rig.store.listInstances("bridges");
        return fresh.every((id) => live.some((instance) => instance.instanceId === id && instance.state === "running"));
      });
      // Within the grace period the fleet stays as the operator set it.
      const caughtUp = await bridges.period();
      expect(caughtUp.autoscale).toMatchObject({ kind: "hold", reason: expect.stringContaining("desired changed") });
      expect(caughtUp.actions).toEqual([]);
      expect(bridges.machines().map((entry) => entry.phase)).toEqual(["active", "active", "active"]);
    },
    LONG,
  );

  it(
    "follows a scheduler's full-scaling down for groups that allow it, through the same graceful shutdown",
    async () => {
      const full = await call(rig.url, "POST", "/api/v1/groups/full-scaling", { token: OPERATOR_TOKEN, body: { direction: "down" } });
      expect(full.body.changes).toEqual([{ groupId: "bridges", from: 3, to: 1 }]);
      const down = await step(bridges);
      expect(down.autoscale).toMatchObject({ kind: "hold", reason: expect.stringContaining("desired changed") });
      // The two idle bridges go; the one with a conference stays.
      expect(down.actions.map((action) => [action.kind, "name" in action ? action.name : ""]).sort()).toEqual([
        ["shutdown", "jitsi-bridges-3"],
        ["shutdown", "jitsi-bridges-4"],
      ]);
      const leaving = [idOf(bridges, "jitsi-bridges-3"), idOf(bridges, "jitsi-bridges-4")];
      await eventually(async () => leaving.every((id) => server(id)?.vmState === "SHUTOFF"));
      const gone = await step(bridges);
      expect(gone.actions.map((action) => action.kind)).toEqual(["destroy", "destroy"]);
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1"]);
      for (const id of leaving) expect(await trail("bridges", id)).toEqual(expect.arrayContaining(["shutdown.confirmed", "act.destroy"]));
    },
    LONG,
  );

  it(
    "scales a Jibri group on its available recorders, and scales in through the recorder's own shutdown report",
    async () => {
      ({ fleet: recorders } = await rig.openGroup({
        name: "recorders",
        type: "jibri",
        size: { cores: 2, ramGb: 4 },
        scaling: {
          minDesired: 1,
          maxDesired: 3,
          desiredCount: 1,
          // Fewer than one recorder available: launch one; two available (more than 1.5) for two periods: one goes.
          scaleUpThreshold: 1,
          scaleDownThreshold: 1.5,
          scalePeriod: PERIOD_S,
          scaleUpPeriodsCount: 1,
          scaleDownPeriodsCount: 2,
        },
        gracePeriodTTLSec: PERIOD_S,
      }));
      await recorders.period();
      await startSidecars(recorders, "jibri");
      await step(recorders);
      const first = idOf(recorders, "jitsi-recorders-1");
      const recording = parts.emulator.startRecording(first, HOUR);

      const up = await stepUntil(recorders, (report) => report.autoscale?.kind === "change");
      expect(up.autoscale).toMatchObject({ kind: "change", direction: "up", desired: 2, figures: [0] });
      expect(recorders.machines().map((entry) => entry.name)).toEqual(["jitsi-recorders-1", "jitsi-recorders-2"]);
      await startSidecars(recorders, "jibri");
      await step(recorders);

      // The recording ends: two recorders available for two periods, one too many.
      parts.emulator.cloud.endMeeting(server(first)!, recording.meetingId);
      const down = await stepUntil(recorders, (report) => report.autoscale?.kind === "change");
      expect(down.autoscale).toMatchObject({ kind: "change", direction: "down", desired: 1, figures: [2, 2] });
      expect(down.actions).toMatchObject([{ kind: "shutdown" }]);
      const leaving = down.actions[0]!.kind === "shutdown" ? down.actions[0]!.instanceId : "";
      await eventually(async () => server(leaving)?.vmState === "SHUTOFF");
      const gone = await step(recorders);
      expect(gone.actions).toMatchObject([{ kind: "destroy" }]);
      expect(recorders.machines()).toHaveLength(1);
      const order = ["shutdown.requested", "shutdown.delivered", "shutdown.confirmed", "act.destroy"];
      expect((await trail("recorders", leaving)).filter((kind) => order.includes(kind))).toEqual(order);
    },
    LONG,
  );

  it(
    "replaces a bridge that shuts down by itself, and reports sidecars of the group that are no machine of its fleet",
    async () => {
      const one = idOf(bridges, "jitsi-bridges-1");
      parts.emulator.sidecarOf(one)!.beginGracefulShutdown();
      await eventually(async () =>
        (await rig.store.listInstances("bridges")).some((i) => i.instanceId === one && i.state === "shutting_down"),
      );
      const replaced = await step(bridges);
      expect(replaced.actions).toMatchObject([
        { kind: "retire", name: "jitsi-bridges-1" },
        { kind: "launch", count: 1 },
      ]);
      expect(bridges.machines().map((entry) => entry.name)).toEqual(["jitsi-bridges-1", "jitsi-bridges-5"]);

      // A stray bridge reports to the group: sanity names it; the new machine has not checked in yet, within its deadline.
      const stray = parts.emulator.addRunningServer({ name: "stray-bridge", cores: 2, ram: 4096 });
      parts.emulator.startSidecar(stray.id, { scalerUrl: rig.url, group: "bridges", instanceType: "JVB", intervalMs: 100 });
      await eventually(async () => (await rig.store.listInstances("bridges")).some((i) => i.instanceId === stray.id));
      expect(await bridges.sanity()).toEqual({ untracked: [stray.id], silent: [] });
      parts.emulator.stopSidecar(stray.id);
    },
    LONG,
  );
});
