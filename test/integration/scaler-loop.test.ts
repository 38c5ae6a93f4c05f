import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisPolicyHistory } from "../../scaler/fleet/history.js";
import { createLogger } from "../../scaler/log.js";
import { DecisionLoop, OUTCOME_KIND } from "../../scaler/loop/decisions.js";
import type { GroupSnapshot } from "../../scaler/policy/types.js";
import { BbbClient } from "../../scaler/signals/bbb.js";
import { SignalGatherer } from "../../scaler/signals/gather.js";
import { PrometheusClient } from "../../scaler/signals/prometheus.js";
import { ScaleliteClient } from "../../scaler/signals/scalelite.js";
import type { FleetMember } from "../../scaler/signals/snapshot.js";
import { ScalerStore, connectRedis } from "../../scaler/store/store.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { RedisServer } from "../harness/redis.js";
import { MINUTE, NOW, policy, server, snapshot, stoppedServer } from "../unit/policy-fixtures.js";

const logger = createLogger("scaler-loop-test", "silent");
const IDLE = { cpu: 0.05, memory: 0.2 };

let redis: RedisServer;
const stores: ScalerStore[] = [];

async function openStore(prefix: string): Promise<ScalerStore> {
  const client = connectRedis(redis.url, 2_000);
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  const store = new ScalerStore(client, {
    keyPrefix: prefix,
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
  });
  stores.push(store);
  return store;
}

beforeAll(async () => {
  redis = await RedisServer.start();
});

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await redis.stop();
});

/** A loop over a fixed snapshot, on a clock the test moves. */
function loopOver(
  store: ScalerStore,
  gathered: () => Promise<GroupSnapshot>,
  clock: { now: number },
  overrides: Record<string, unknown> = {},
): DecisionLoop {
  return new DecisionLoop({
    group: "bbb",
    gather: gathered,
    policy: () => Promise.resolve(policy({ sustainPeriods: 1, ...overrides })),
    audit: store,
    intervalMs: MINUTE,
    now: () => clock.now,
    logger,
  });
}

describe("decision loop with the store on a real redis-server", () => {
  it("records a policy-outcome entry per period and each decision on its server's trail", async () => {
    const store = await openStore("loop-record:");
    const clock = { now: NOW };
    const loop = loopOver(store, () => Promise.resolve({ ...snapshot([server("a", IDLE), server("b", IDLE)]), takenAt: clock.now }), clock);
    const outcome = await loop.tick();
    expect(outcome.decisions.map((decision) => `${decision.kind} ${decision.server ?? ""}`)).toEqual(["drain a"]);

    // The group's trail holds the outcome and, after it, each decision on a server.
    const trail = await store.readAudit("bbb", { limit: 10 });
    expect(trail.map((audit) => audit.kind)).toEqual(["decision.drain", OUTCOME_KIND]);
    const entry = trail[1];
    expect(entry?.at).toBe(NOW);
    expect(entry?.details).toMatchObject({ group: "bbb", decisions: [{ kind: "drain", server: "a" }] });

    const onServer = await store.readAudit("bbb", { instanceId: "a", limit: 10 });
    expect(onServer.map((audit) => audit.kind)).toEqual(["decision.drain"]);
    expect(onServer[0]?.details).toMatchObject({ kind: "drain", server: "a", inputs: { meetings: 0 } });
    expect(await store.readAudit("bbb", { instanceId: "b", limit: 10 })).toEqual([]);
  });

  it("reads its own history back: the scale-in of the last period holds the next one in its cooldown", async () => {
    const store = await openStore("loop-history:");
    const clock = { now: NOW };
    const servers = [server("a", IDLE), server("b", IDLE), server("c", IDLE)];
    const loop = loopOver(store, () => Promise.resolve({ ...snapshot(servers), takenAt: clock.now }), clock, {
      cooldownSeconds: { afterScaleOut: 600, afterScaleIn: 300, perServer: 300 },
    });
    const first = await loop.tick();
    expect(first.decisions.map((decision) => decision.kind)).toContain("drain");

    clock.now += MINUTE;
    const second = await loop.tick();
    expect(second.decisions).toEqual([]);
    expect(second.holds.map((hold) => hold.reason)).toContain("scale-in held: cooldown after a scale-in");
    expect(second.holds.find((hold) => hold.reason.includes("cooldown"))?.inputs.secondsSinceScaleIn).toBe(60);

    clock.now += 5 * MINUTE;
    const later = await loop.tick();
    expect(later.holds.map((hold) => hold.reason)).not.toContain("scale-in held: cooldown after a scale-in");
  });

  it("records each period's load by weekday and local time, and a week later launches ahead of it", async () => {
    const store = await openStore("loop-forecast:");
    const clock = { now: NOW + 2 * MINUTE };
    const busy = { cpu: 0.8, memory: 0.5, meetings: 4 };
    let servers = [server("a", busy), server("b", busy), stoppedServer("c")];
    const noGrowth = { maxSize: { cores: 2, ramGb: 8 } };
    const loop = new DecisionLoop({
      group: "bbb",
      gather: () => Promise.resolve({ ...snapshot(servers), takenAt: clock.now }),
      policy: () => Promise.resolve(policy(noGrowth)),
      audit: store,
      loadProfile: store,
      intervalMs: MINUTE,
      now: () => clock.now,
      logger,
    });
    await loop.tick();
    expect(await store.redis.hkeys(store.keys.loadProfile("bbb"))).toEqual(["tue 10:02"]);

    // A week later at 10:00 the fleet is idle, but last week's 10:02 was busy: the stopped server starts now.
    servers = [server("a", IDLE), server("b", IDLE), stoppedServer("c")];
    clock.now = NOW + 7 * 24 * 3_600_000;
    const nextWeek = await loop.tick();
    expect(nextWeek.decisions.map((decision) => `${decision.kind} ${decision.server ?? ""}`)).toEqual(["start c"]);
    expect(nextWeek.decisions[0]?.inputs).toMatchObject({ forecastCores: 3.2, forecastRamGb: 8 });

    // Two weeks on, the 10:02 record is too old to stand for last week: no forecast, nothing to do.
    clock.now = NOW + 14 * 24 * 3_600_000;
    const later = await loop.tick();
    expect(later.decisions).toEqual([]);
  });

  it("on a holiday keeps last week's load in the profile, so the school day a week later forecasts its bells", async () => {
    const store = await openStore("loop-holiday:");
    const clock = { now: NOW };
    const busy = { cpu: 0.8, memory: 0.5, meetings: 4 };
    let servers = [server("a", busy), server("b", busy)];
    const loop = new DecisionLoop({
      group: "bbb",
      gather: () => Promise.resolve({ ...snapshot(servers), takenAt: clock.now }),
      policy: () => Promise.resolve(policy({ maxSize: { cores: 2, ramGb: 8 } })),
      audit: store,
      loadProfile: store,
      intervalMs: MINUTE,
      now: () => clock.now,
      logger,
    });
    const recorded = async (slot: string) => JSON.parse((await store.redis.hget(store.keys.loadProfile("bbb"), slot)) ?? "null");
    const tickMinutes = async (from: number, minutes: number) => {
      for (let minute = 0; minute < minutes; minute += 1) {
        clock.now = from + minute * MINUTE;
        await loop.tick();
      }
    };
    // An ordinary Tuesday from 10:00: a lesson, 3.2 cores busy.
    await tickMinutes(NOW, 8);
    expect(await recorded("tue 10:06")).toMatchObject({ cpuCores: 3.2 });
    // A week later a holiday: the lesson does not come. Once today runs far below last week, each slot keeps last
    // week's load (recorded now, so it stands for next week), not the holiday's.
    servers = [server("a", IDLE), server("b", IDLE)];
    const holiday = NOW + 7 * 24 * 3_600_000;
    await tickMinutes(holiday, 8);
    expect(await recorded("tue 10:06")).toEqual({ at: holiday + 6 * MINUTE, cpuCores: 3.2, memoryGb: 8 });
    // Before the comparison has enough minutes, the holiday's own load is what was seen.
    expect(await recorded("tue 10:00")).toMatchObject({ at: holiday, cpuCores: 0.2 });
  });

  it("keeps its own history apart from the audit trail: unrelated entries erase no launch, and a restart keeps it", async () => {
    const store = await openStore("loop-own-history:");
    const history = new RedisPolicyHistory(store.redis, "loop-own-history:", { retentionMs: 24 * 3_600_000 });
    const clock = { now: NOW };
    const busy = { cpu: 0.9, memory: 0.5, meetings: 4 };
    let servers = [server("a", busy), server("b", busy)];
    const open = () =>
      new DecisionLoop({
        group: "bbb",
        gather: () => Promise.resolve({ ...snapshot(servers), takenAt: clock.now }),
        policy: () =>
          Promise.resolve(
            policy({
              sustainPeriods: 1,
              maxSize: { cores: 2, ramGb: 8 },
              launchRate: { count: 1, perSeconds: 600 },
              cooldownSeconds: { afterScaleOut: 600, afterScaleIn: 300, perServer: 300 },
            }),
          ),
        audit: store,
        history,
        intervalMs: MINUTE,
        now: () => clock.now,
        logger,
      });
    const loop = open();
    const first = await loop.tick();
    expect(first.decisions.map((decision) => decision.kind)).toEqual(["create"]);

    // Operators and check-ins fill the fleet's audit trail between two periods.
    for (let index = 0; index < 60; index += 1) {
      await store.appendAudit("bbb", { kind: "operator.cordon", actor: "operator", message: `unrelated ${index}` });
    }
    clock.now += MINUTE;
    const second = await loop.tick();
    expect(second.decisions).toEqual([]);
    expect(second.holds.map((hold) => hold.reason)).toContain("still short of capacity: launch rate limit (1 per 600 s) reached");

    // A restarted scaler reads the same history: the load has fallen, and the scale-out three minutes ago holds scale-in.
    servers = [server("a", IDLE), server("b", IDLE), server("c", IDLE)];
    clock.now += 2 * MINUTE;
    const restarted = await open().tick();
    expect(restarted.decisions).toEqual([]);
    expect(restarted.holds.find((hold) => hold.reason === "scale-in held: cooldown after a scale-out")?.inputs.secondsSinceScaleOut).toBe(
      180,
    );
  });

  it("decides on without a failing source: Prometheus unreachable, Scalelite and BBB still read", async () => {
    const store = await openStore("loop-failing:");
    const scalelite = await serve((call) =>
      call === "getServers"
        ? JSON.stringify([
            { id: "bbb-1", url: "https://bbb-1/bigbluebutton/api", state: "enabled", load: 20, online: "online" },
            { id: "bbb-2", url: "https://bbb-2/bigbluebutton/api", state: "enabled", load: 0, online: "online" },
          ])
        : "{}",
    );
    const bbb = await serve(
      () =>
        "<response><returncode>SUCCESS</returncode><meetings><meeting><meetingID>m</meetingID><createTime>1</createTime><participantCount>20</participantCount><videoCount>1</videoCount></meeting></meetings></response>",
    );
    const closedPort = await freeLoopbackPort();
    const clock = { now: NOW };
    const fleet: FleetMember[] = ["bbb-1", "bbb-2"].map((id) => ({
      id,
      size: { cores: 2, ramGb: 8 },
      power: "running",
      bootedAt: NOW - 3_600_000,
      resizedAt: null,
      instance: `${id}:9100`,
      scaleliteId: id,
    }));
    const gatherer = new SignalGatherer({
      group: "bbb",
      canPowerOff: true,
      freshForMs: 2 * MINUTE,
      prometheus: new PrometheusClient({ baseUrl: `http://127.0.0.1:${closedPort}`, timeoutMs: 1_000 }),
      scalelite: new ScaleliteClient({ baseUrl: `${scalelite.url}/scalelite/api`, secret: "scalelite-secret-0123456789" }),
      bbbOf: (member) =>
        member.id === "bbb-1" ? new BbbClient({ baseUrl: `${bbb.url}/bigbluebutton/api`, secret: "bbb-secret" }) : undefined,
      fleet: () => Promise.resolve(fleet),
      checkIns: () => Promise.resolve(new Map()),
      now: () => clock.now,
      logger,
    });
    try {
      const loop = loopOver(store, () => gatherer.snapshot(), clock);
      const outcome = await loop.tick();
      // No metrics: nothing is read as idle, so no scale-in, but the period is decided and recorded.
      expect(outcome.decisions.filter((decision) => decision.kind === "drain" || decision.kind === "stop")).toEqual([]);
      // Servers without metrics count as fully loaded, never as idle.
      expect(outcome.sample.cpuUtilization).toBe(1);
      expect((await store.readAudit("bbb", { limit: 10 })).map((audit) => audit.kind)).toContain(OUTCOME_KIND);

      const seen = await gatherer.snapshot();
      const one = seen.servers.find((candidate) => candidate.id === "bbb-1");
      expect(one?.cpu.status).toBe("missing");
      expect(one?.scaleliteStatus).toBe("fresh");
      expect(one?.scalelite).toEqual({ state: "enabled", online: true, load: 20, loadMultiplier: 1 });
      expect(one?.meetings).toEqual({ value: 1, status: "fresh" });
      expect(one?.participants).toEqual({ value: 20, status: "fresh" });
    } finally {
      await scalelite.stop();
      await bbb.stop();
    }
  });
});

/** A loopback HTTP server answering every call (named by the last path segment) with `answer(call)`. */
async function serve(answer: (call: string) => string): Promise<{ url: string; stop: () => Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const call = new URL(request.url ?? "/", "http://127.0.0.1").pathname.split("/").pop() ?? "";
    request.resume();
    request.once("end", () => {
      response.writeHead(200);
      response.end(answer(call));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
