import { once } from "node:events";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisServer } from "../harness/redis.js";
import { TOKENS, call, eventually, groupBody, startScaler, useSidecarScaler, type ScalerUnderTest } from "./scaler-fixture.js";

const rig = useSidecarScaler("sidecar-hardening", [
  ["colons", "JVB"],
  ["batch", "JVB"],
  ["deep", "JVB"],
]);

const poll = (group: string, instanceId: string) =>
  call(rig.scaler.url, "POST", "/sidecar/poll", { token: rig.token, body: { instanceId, instanceType: "JVB", group } });
const status = (group: string, instanceId: string, stats: Record<string, unknown> = { stress_level: 0.3 }) =>
  call(rig.scaler.url, "POST", "/sidecar/status", {
    token: rig.token,
    body: { instance: { instanceId, instanceType: "JVB", group }, stats },
  });

describe("instance ids that hold a ':'", () => {
  it("name their own keys: a poll as jvb-2:audit or jvb-2:commands leaves jvb-2 working and its shutdown pending", async () => {
    expect((await poll("colons", "jvb-2")).status).toBe(200);
    const shutdown = await call(rig.scaler.url, "POST", "/api/v1/groups/colons/shutdown", {
      token: TOKENS.operator,
      body: { instances: ["jvb-2"] },
    });
    expect(shutdown.status).toBe(202);
    const commandsKey = rig.scaler.store.keys.commands("colons", "jvb-2");
    const ttlBefore = await rig.scaler.store.redis.pttl(commandsKey);
    expect(ttlBefore).toBeGreaterThan(60 * 60 * 1000);

    for (const impostor of ["jvb-2:audit", "jvb-2:commands"]) {
      const reply = await poll("colons", impostor);
      expect(reply, impostor).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
    }

    expect(await rig.scaler.store.redis.pttl(commandsKey)).toBeGreaterThan(ttlBefore - 60_000);
    expect(await poll("colons", "jvb-2")).toEqual({ status: 200, body: { shutdown: true, reconfigure: null } });
    const audit = await call(rig.scaler.url, "GET", "/api/v1/groups/colons/instances/jvb-2/audit", { token: TOKENS.viewer });
    expect(audit.status).toBe(200);
    expect((audit.body.entries as { kind: string }[]).map((entry) => entry.kind)).toContain("shutdown.delivered");
    const impostorAudit = await call(rig.scaler.url, "GET", "/api/v1/groups/colons/instances/jvb-2:audit/audit", { token: TOKENS.viewer });
    expect((impostorAudit.body.entries as { instanceId: string }[]).every((entry) => entry.instanceId === "jvb-2:audit")).toBe(true);
    const report = await call(rig.scaler.url, "GET", "/api/v1/groups/colons/report", { token: TOKENS.viewer });
    const ids = (report.body.instances as { instanceId: string }[]).map((instance) => instance.instanceId).sort();
    expect(ids).toEqual(["jvb-2", "jvb-2:audit", "jvb-2:commands"]);
  });
});

describe("a batch of check-ins", () => {
  it("answers each on its own: one that Redis refuses fails alone, the others are written", async () => {
    // A key of the wrong type where one instance's state belongs, as a stray write or an old layout would leave it.
    await rig.scaler.store.redis.set(rig.scaler.store.keys.instance("batch", "jvb-broken"), "not a hash");
    const ids = Array.from({ length: 30 }, (_, index) => (index === 7 ? "jvb-broken" : `jvb-${index}`));
    // Submitted in one turn of the event loop: the store writes them with one script call.
    const outcomes = await Promise.allSettled(
      ids.map((instanceId) =>
        rig.scaler.store.checkIn({
          kind: "status",
          details: { instanceId, instanceType: "JVB", group: "batch" },
          stats: { stress_level: 0.3 },
          stress: 0.3,
          shuttingDown: false,
          reconfigureError: false,
        }),
      ),
    );
    expect(outcomes.map((outcome) => outcome.status)).toEqual(ids.map((id) => (id === "jvb-broken" ? "rejected" : "fulfilled")));
    const report = await call(rig.scaler.url, "GET", "/api/v1/groups/batch/report", { token: TOKENS.viewer });
    expect(report.body).toMatchObject({ counts: { running: 29 } });
    // Over HTTP the refused one is a server error, not a hang or a 200.
    expect((await status("batch", "jvb-broken")).status).toBe(500);
    expect((await status("batch", "jvb-3")).status).toBe(200);
  });
});

/** `{"a":{"a":...{"a":1}}}`, `depth` objects deep, as text: `JSON.stringify` itself would overflow its stack on it. */
function nested(depth: number): string {
  return '{"a":'.repeat(depth - 1) + '{"a":1}' + "}".repeat(depth - 1);
}

describe("reports out of shape", () => {
  it("refuses stats nested 5,000 deep with a 400 naming the field, and the check-ins sent with it succeed", async () => {
    const instance = { instanceId: "jvb-deep", instanceType: "JVB", group: "deep" };
    const rawBody = `{"instance":${JSON.stringify(instance)},"stats":{"stress_level":0.2,"extra":${nested(5_000)}}}`;
    const deep = call(rig.scaler.url, "POST", "/sidecar/status", { token: rig.token, rawBody });
    const others = Array.from({ length: 30 }, (_, index) => status("deep", `jvb-${index}`));
    const [refused, ...replies] = await Promise.all([deep, ...others]);
    expect(refused?.status).toBe(400);
    const issues = refused?.body.issues as { field: string; message: string }[];
    expect(issues[0]?.field).toMatch(/^stats\.extra(\.a)+$/);
    expect(issues[0]?.message).toMatch(/nested deeper than \d+ levels/);
    expect(replies.map((reply) => reply.status)).toEqual(Array(30).fill(200));
    expect(await rig.scaler.store.redis.exists(rig.scaler.store.keys.instance("deep", "jvb-deep"))).toBe(0);
  });

  it("refuses too many members and too long strings, naming the field", async () => {
    const wide = Object.fromEntries(Array.from({ length: 1_500 }, (_, index) => [`k${index}`, 0]));
    const tooWide = await status("deep", "jvb-wide", { stress_level: 0.1, wide });
    expect(tooWide.status).toBe(400);
    expect(tooWide.body.issues).toEqual([{ field: "stats.wide", message: expect.stringMatching(/more than \d+ members/) }]);
    const tooLong = await status("deep", "jvb-long", { stress_level: 0.1, note: "x".repeat(40_000) });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.issues).toEqual([{ field: "stats.note", message: expect.stringMatching(/longer than \d+ characters/) }]);
  });
});

describe("a Redis that refuses writes (maxmemory with noeviction)", () => {
  let full: RedisServer;
  let scalerOnFull: ScalerUnderTest;

  beforeAll(async () => {
    full = await RedisServer.start();
    scalerOnFull = await startScaler(full, rig.keys.baseUrl);
  });

  afterAll(async () => {
    await scalerOnFull?.stop();
    await full?.stop();
  });

  it("answers 503 naming the refusal on every write, is not ready meanwhile, and recovers once Redis has room", async () => {
    const url = scalerOnFull.url;
    expect((await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("full", "JVB") })).status).toBe(201);
    const checkIn = () =>
      call(url, "POST", "/sidecar/poll", { token: rig.token, body: { instanceId: "jvb-1", instanceType: "JVB", group: "full" } });
    expect((await checkIn()).status).toBe(200);
    expect((await call(url, "GET", "/readyz")).status).toBe(200);

    const redisClient = scalerOnFull.store.redis;
    await redisClient.config("SET", "maxmemory-policy", "noeviction");
    await redisClient.config("SET", "maxmemory", "1");
    try {
      const refusals = {
        checkIn: await checkIn(),
        desired: await call(url, "PUT", "/api/v1/groups/full/desired", { token: TOKENS.operator, body: { desired: 3 } }),
        pause: await call(url, "POST", "/api/v1/groups/full/pause", { token: TOKENS.operator }),
        create: await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("another", "JVB") }),
        readyz: await call(url, "GET", "/readyz"),
      };
      for (const [what, reply] of Object.entries(refusals)) {
        expect(reply.status, what).toBe(503);
        expect(reply.body, what).toMatchObject({ error: "unavailable", message: expect.stringMatching(/redis refuses writes: OOM/) });
      }
      // Reads still work: an operator can see what the fleet was doing.
      expect((await call(url, "GET", "/api/v1/groups/full", { token: TOKENS.viewer })).status).toBe(200);
      expect((await call(url, "GET", "/healthz")).status).toBe(200);
    } finally {
      await redisClient.config("SET", "maxmemory", "0");
    }
    expect((await call(url, "GET", "/readyz")).status).toBe(200);
    expect((await checkIn()).status).toBe(200);
    expect((await call(url, "GET", "/api/v1/groups/another", { token: TOKENS.viewer })).status).toBe(404);
  });
});

describe("groups that do not exist", () => {
  it("answer 404 naming the group on every route, audits included", async () => {
    const routes: [string, string, unknown?][] = [
      ["GET", "/api/v1/groups/nowhere"],
      ["GET", "/api/v1/groups/nowhere/report"],
      ["GET", "/api/v1/groups/nowhere/stress"],
      ["GET", "/api/v1/groups/nowhere/audit"],
      ["GET", "/api/v1/groups/nowhere/instances/jvb-1/audit"],
      ["PUT", "/api/v1/groups/nowhere/desired", { desired: 1 }],
      ["POST", "/api/v1/groups/nowhere/pause"],
      ["POST", "/api/v1/groups/nowhere/reconfigure", {}],
      ["POST", "/api/v1/groups/nowhere/shutdown", { instances: ["jvb-1"] }],
    ];
    for (const [method, path, body] of routes) {
      const reply = await call(rig.scaler.url, method, path, { token: TOKENS.admin, body });
      expect(reply.status, `${method} ${path}`).toBe(404);
      expect(reply.body, `${method} ${path}`).toMatchObject({
        error: "group_not_found",
        message: expect.stringContaining("nowhere"),
        issues: [{ field: "id" }],
      });
    }
  });

  it("keep a deleted group's audit readable while it is retained", async () => {
    expect((await call(rig.scaler.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("deleted", "JVB") })).status).toBe(
      201,
    );
    expect((await call(rig.scaler.url, "DELETE", "/api/v1/groups/deleted", { token: TOKENS.admin })).status).toBe(204);
    const audit = await call(rig.scaler.url, "GET", "/api/v1/groups/deleted/audit", { token: TOKENS.viewer });
    expect(audit.status).toBe(200);
    expect((audit.body.entries as { kind: string }[])[0]?.kind).toBe("group.deleted");
  });
});

describe("a client that goes away mid-request", () => {
  /** Sends the head and part of a body, then closes the connection. */
  async function abandon(path: string, authorization: string): Promise<void> {
    const { port } = new URL(rig.scaler.url);
    const socket = connect(Number(port), "127.0.0.1");
    await once(socket, "connect");
    socket.write(
      `POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${authorization}\r\n` +
        `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"instance":`,
    );
    socket.destroy();
  }

  const countOf = (metrics: string, route: string, status: string) =>
    Number(new RegExp(`_count\\{method="POST",route="${route}",status="${status}"\\} (\\d+)`).exec(metrics)?.[1] ?? "0");

  it("is counted as 499, not as a server error, on check-ins and on the control API", async () => {
    const metricsNow = async () => (await fetch(`${rig.scaler.url}/metrics`)).text();
    const before = await metricsNow();
    await abandon("/sidecar/status", rig.token);
    await abandon("/api/v1/groups", TOKENS.admin);
    let metrics = "";
    await eventually(
      async () => {
        metrics = await metricsNow();
        return countOf(metrics, "/sidecar/status", "499") === 1 && countOf(metrics, "/api/v1/groups", "499") === 1;
      },
      10_000,
      "both abandoned requests counted",
    );
    expect(countOf(metrics, "/sidecar/status", "500")).toBe(countOf(before, "/sidecar/status", "500"));
    expect(countOf(metrics, "/api/v1/groups", "500")).toBe(countOf(before, "/api/v1/groups", "500"));
  });
});
