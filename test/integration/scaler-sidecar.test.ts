import { connect } from "node:net";
import { describe, expect, it } from "vitest";
import { TOKENS, call, eventually, groupBody, startScaler, useSidecarScaler } from "./scaler-fixture.js";

const rig = useSidecarScaler("jitsi/sidecar-key", [
  ["meet-jvb", "JVB"],
  ["meet-jibri", "jibri"],
  ["bbb-workers", "bbb"],
  ["commands", "JVB"],
]);

const sidecar = (path: string, body: unknown) => call(rig.scaler.url, "POST", `/sidecar/${path}`, { token: rig.token, body });
const report = async (group: string) =>
  (await call(rig.scaler.url, "GET", `/api/v1/groups/${group}/report`, { token: TOKENS.viewer })).body as {
    counts: Record<string, number>;
    instances: {
      instanceId: string;
      state: string;
      stress: number | null;
      stats: Record<string, unknown> | null;
      shutdownRequested: boolean;
      reconfigureRequested: string | null;
    }[];
  };
const auditKinds = async (group: string, instance?: string) => {
  const path = instance === undefined ? `/api/v1/groups/${group}/audit` : `/api/v1/groups/${group}/instances/${instance}/audit`;
  const entries = (await call(rig.scaler.url, "GET", path, { token: TOKENS.viewer })).body.entries as { kind: string }[];
  return entries.map((entry) => entry.kind);
};

describe("sidecar check-in cycle", () => {
  it("records a JVB's poll, stats and status, and keeps its stress in the group's series", async () => {
    const instance = {
      instanceId: "jvb-1",
      instanceType: "JVB",
      group: "meet-jvb",
      region: "eu-central",
      cloud: "oracle",
      privateIp: "10.0.0.5",
    };
    expect(await sidecar("poll", instance)).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });

    const stats = { stress_level: 0.42, participants: 17, graceful_shutdown: false, conferences: 3 };
    expect(await sidecar("stats", { instance, stats, timestamp: Date.now() })).toEqual({ status: 200, body: { save: "OK" } });
    expect(await sidecar("status", { instance, stats: { ...stats, stress_level: 0.5 }, timestamp: Date.now() - 90_000 })).toEqual({
      status: 200,
      body: { shutdown: false, reconfigure: null },
    });

    const { counts, instances } = await report("meet-jvb");
    expect(counts).toMatchObject({ running: 1, total: 1 });
    expect(instances[0]).toMatchObject({ instanceId: "jvb-1", state: "running", stress: 0.5, stats: { participants: 17, conferences: 3 } });
    const points = (await call(rig.scaler.url, "GET", "/api/v1/groups/meet-jvb/stress", { token: TOKENS.viewer })).body.points as {
      stress: number;
      instanceId: string;
    }[];
    expect(points.map((point) => point.stress)).toEqual([0.42, 0.5]);
    expect(await auditKinds("meet-jvb", "jvb-1")).toContain("instance.joined");
  });

  it("records a jibri's busy status as load", async () => {
    const instance = { instanceId: "jibri-7", instanceType: "jibri", group: "meet-jibri" };
    expect((await sidecar("poll", instance)).body).toEqual({ shutdown: false, reconfigure: null });
    const busy = { status: { busyStatus: "BUSY", health: { healthStatus: "HEALTHY" } } };
    expect((await sidecar("status", { instance, stats: busy, timestamp: Date.now() })).status).toBe(200);
    const { instances } = await report("meet-jibri");
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({ instanceId: "jibri-7", state: "running", stress: 1 });
  });

  it("records a BBB server's meetings", async () => {
    const instance = { instanceId: "bbb-03.example.org", instanceType: "bbb", group: "bbb-workers" };
    const stats = { meetings: 4, participants: 61, videos: 12, listeners: 20, stress_level: 0.3 };
    expect((await sidecar("stats", { instance, stats, timestamp: Date.now() })).body).toEqual({ save: "OK" });
    const { instances } = await report("bbb-workers");
    expect(instances[0]).toMatchObject({ instanceId: "bbb-03.example.org", stress: 0.3, stats: { meetings: 4, participants: 61 } });
  });

  it("refuses a check-in whose type does not match the group, naming the field", async () => {
    const reply = await sidecar("poll", { instanceId: "jvb-x", instanceType: "jibri", group: "meet-jvb" });
    expect(reply.status).toBe(409);
    expect(reply.body.issues).toEqual([{ field: "instanceType", message: "group meet-jvb holds JVB instances, not jibri" }]);
  });
});

describe("commands", () => {
  const instance = { instanceId: "jvb-20", instanceType: "JVB", group: "commands" };
  const stats = { stress_level: 0.1, participants: 0 };

  it("delivers a shutdown request and records the instance's confirmation", async () => {
    const other = { ...instance, instanceId: "jvb-21" };
    await sidecar("poll", instance);
    await sidecar("poll", other);

    const requested = await call(rig.scaler.url, "POST", "/api/v1/groups/commands/shutdown", {
      token: TOKENS.operator,
      body: { instances: ["jvb-20"] },
    });
    expect(requested.status).toBe(202);
    expect((await sidecar("poll", instance)).body).toEqual({ shutdown: true, reconfigure: null });
    expect((await sidecar("poll", other)).body).toEqual({ shutdown: false, reconfigure: null });

    expect((await sidecar("shutdown", instance)).body).toEqual({ save: "OK" });
    const { instances } = await report("commands");
    expect(instances.find((entry) => entry.instanceId === "jvb-20")).toMatchObject({ state: "shutting_down", shutdownRequested: true });
    expect(instances.find((entry) => entry.instanceId === "jvb-21")).toMatchObject({ state: "running", shutdownRequested: false });
    expect(await auditKinds("commands", "jvb-20")).toEqual(
      expect.arrayContaining(["shutdown.requested", "shutdown.delivered", "instance.shutting_down"]),
    );
  });

  it("delivers a reconfigure request until the sidecar echoes it back as complete", async () => {
    const target = { ...instance, instanceId: "jvb-22" };
    await sidecar("poll", target);
    const requested = await call(rig.scaler.url, "POST", "/api/v1/groups/commands/reconfigure", {
      token: TOKENS.operator,
      body: { instances: ["jvb-22"] },
    });
    expect(requested.status).toBe(202);
    const request = requested.body.request as string;
    expect(new Date(request).toISOString()).toBe(request);

    expect((await sidecar("status", { instance: target, stats, timestamp: Date.now() })).body).toEqual({
      shutdown: false,
      reconfigure: request,
    });
    // Until it completes, every reply repeats the request.
    expect((await sidecar("poll", target)).body).toEqual({ shutdown: false, reconfigure: request });
    const done = await sidecar("status", { instance: target, stats, timestamp: Date.now(), reconfigureComplete: request });
    expect(done.body).toEqual({ shutdown: false, reconfigure: null });
    expect((await sidecar("poll", target)).body).toEqual({ shutdown: false, reconfigure: null });
    expect(await auditKinds("commands", "jvb-22")).toEqual(
      expect.arrayContaining(["reconfigure.requested", "reconfigure.delivered", "reconfigure.completed"]),
    );
  });

  it("refuses commands for instances that are not live in the group, changing nothing", async () => {
    const before = await auditKinds("commands");
    const reply = await call(rig.scaler.url, "POST", "/api/v1/groups/commands/shutdown", {
      token: TOKENS.operator,
      body: { instances: ["jvb-20", "ghost-1"] },
    });
    expect(reply.status).toBe(404);
    expect(reply.body.message).toContain("ghost-1");
    expect(await auditKinds("commands")).toEqual(before);
  });
});

describe("status page", () => {
  it("shows each group with its desired count and live instances by state", async () => {
    const response = await fetch(`${rig.scaler.url}/`);
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    expect(html).toMatch(/<tr><td>meet-jvb<\/td><td>JVB<\/td><td>active<\/td><td>1 \/ 2 \/ 5<\/td><td>0<\/td><td>1<\/td><td>0<\/td><\/tr>/);
  });
});

describe("liveness", () => {
  it("drops an instance that stops reporting once its TTL has passed", async () => {
    const shortLived = await startScaler(rig.redis, rig.keys.baseUrl, {
      keyPrefix: "ttl:",
      instanceTtl: { provisioningSeconds: 2, idleSeconds: 1, shuttingDownSeconds: 1 },
    });
    try {
      const created = await call(shortLived.url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("short", "JVB") });
      expect(created.status).toBe(201);
      await shortLived.store.registerProvisioning("short", "jvb-new", { cloud: "ionos" }, "actuator");
      const checkedIn = await call(shortLived.url, "POST", "/sidecar/poll", {
        token: rig.token,
        body: { instanceId: "jvb-old", instanceType: "JVB", group: "short" },
      });
      expect(checkedIn.status).toBe(200);

      await eventually(async () => (await shortLived.store.groupReport("short")).counts.total === 0, 60_000, "both instances expired");
      // Redis expires the hashes by their own TTL, which starts when the write lands: a moment after the index's stamp.
      const instanceKeys = [shortLived.store.keys.instance("short", "jvb-old"), shortLived.store.keys.instance("short", "jvb-new")];
      await eventually(async () => (await shortLived.store.redis.exists(...instanceKeys)) === 0, 5_000, "both instance hashes expired");
      expect(await shortLived.store.redis.zcard(shortLived.store.keys.live("short"))).toBeLessThanOrEqual(2);
    } finally {
      await shortLived.stop();
    }
  });
});

describe("bodies that arrive in pieces or not at all", () => {
  /** Sends a check-in over a raw connection: the request head, then the body's pieces with a pause before each. */
  async function rawCheckIn(body: string, pieces: number, closeEarly: boolean): Promise<string> {
    const port = Number(new URL(rig.scaler.url).port);
    const socket = connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.write(
      `POST /sidecar/poll HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${rig.token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
    );
    const size = Math.ceil(body.length / pieces);
    for (let start = 0; start < body.length; start += size) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (closeEarly && start + size >= body.length) break;
      socket.write(body.slice(start, start + size));
    }
    if (closeEarly) socket.destroy();
    await closed;
    return answer;
  }

  it("reads a body sent in several pieces", async () => {
    const answer = await rawCheckIn(JSON.stringify({ instanceId: "jvb-pieces", instanceType: "JVB", group: "meet-jvb" }), 4, false);
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    expect(answer).toContain('{"shutdown":false,"reconfigure":null}');
  });

  it("records nothing for a client that goes away in the middle of its body, and goes on serving", async () => {
    await rawCheckIn(JSON.stringify({ instanceId: "jvb-gone", instanceType: "JVB", group: "meet-jvb" }), 3, true);
    expect((await sidecar("poll", { instanceId: "jvb-after", instanceType: "JVB", group: "meet-jvb" })).status).toBe(200);
    const ids = (await report("meet-jvb")).instances.map((instance) => instance.instanceId);
    expect(ids).toContain("jvb-after");
    expect(ids).not.toContain("jvb-gone");
  });
});
