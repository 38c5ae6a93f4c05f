import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import { decodeProtectedHeader, importSPKI, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { parseTrace } from "../emulator/load-driver.js";

const TRACE = new URL("../traces/school-day.csv", import.meta.url).pathname;

describe("load driver: the school-day trace replayed into Scalelite", () => {
  let emulator: Emulator;

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" } });
  });

  afterAll(async () => {
    await emulator.stop();
  });

  it("places the trace's meetings as they arrive, ends them after their duration, and CPU follows", async () => {
    const trace = parseTrace(await readFile(TRACE, "utf8"));
    expect(trace.length).toBe(1405);
    const servers = Array.from({ length: 40 }, (_, index) => emulator.addRunningServer({ name: `bbb-${index}`, cores: 8, ram: 16384 }));
    for (const server of servers) emulator.scalelite.add(emulator.bbbUrl(server.id), emulator.cloud.bbbSecret, 1, "").state = "enabled";
    emulator.scalelite.poll();

    const from = 7 * 3600 + 55 * 60;
    const until = 9 * 3600;
    const compression = 60;
    const response = await fetch(`${emulator.url}/_control/load-driver`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ csv: await readFile(TRACE, "utf8"), compression, fromSecond: from, untilSecond: until }),
    });
    expect(response.status).toBe(201);
    const inWindow = trace.filter((meeting) => meeting.startSecond >= from && meeting.startSecond <= until);
    expect(emulator.loadDriver.stats.scheduled).toBe(inWindow.length);

    const participantsRunning = () =>
      [...emulator.cloud.servers.values()].reduce(
        (sum, server) => sum + [...server.meetings.values()].reduce((s, m) => s + m.participants, 0),
        0,
      );
    const busiestCpu = () => Math.max(...servers.map((server) => emulator.cloud.load(server).cpuUtilisation));

    // 08:55 in trace time is 60 trace-minutes in, one emulated minute at 60x.
    emulator.clock.advance(((8 * 3600 + 55 * 60 - from) * 1000) / compression);
    const peakSecond = 8 * 3600 + 55 * 60;
    const expectedAtPeak = inWindow
      .filter((m) => m.startSecond <= peakSecond && m.startSecond + m.durationSeconds > peakSecond)
      .reduce((sum, m) => sum + m.participants, 0);
    expect(participantsRunning()).toBe(expectedAtPeak);
    expect(emulator.loadDriver.stats.rejected).toBe(0);
    expect(busiestCpu()).toBeGreaterThan(0.2);

    // Long after the last meeting of the window ended, the servers are idle again.
    emulator.clock.advance((4 * 3600 * 1000) / compression);
    expect(emulator.loadDriver.stats.placed).toBe(inWindow.length);
    expect(participantsRunning()).toBe(0);
    expect(busiestCpu()).toBeLessThan(0.01);
  });

  it("counts meetings that find no enabled server as rejected", () => {
    for (const entry of emulator.scalelite.servers.values()) entry.state = "disabled";
    emulator.loadDriver.replay([{ startSecond: 0, durationSeconds: 60, participants: 20, videos: 2, listenOnly: 3, kind: "class" }]);
    emulator.clock.advance(1);
    expect(emulator.loadDriver.stats).toMatchObject({ scheduled: 1, placed: 0, rejected: 1, participantsRejected: 20 });
  });
});

describe("sidecar check-in loop of an emulated server", () => {
  let emulator: Emulator;
  let scaler: ServerType;
  let scalerUrl: string;
  const reports: { route: string; body: Record<string, unknown>; issuer: unknown }[] = [];
  const arrivals: (() => void)[] = [];
  const shutdownOnCheckIn = 2;

  /** Resolves once the stub scaler has received `count` calls. */
  const received = (count: number) =>
    new Promise<void>((resolve) => {
      const check = () => (reports.length >= count ? resolve() : arrivals.push(check));
      check();
    });

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "manual" } });
    // A stub scaler that authenticates check-ins the way REFERENCE §1 says: key fetched by sha256(kid).
    const app = new Hono();
    app.post("/sidecar/:route", async (c) => {
      const token = (c.req.header("authorization") ?? "").replace(/^Bearer /, "");
      const { kid } = decodeProtectedHeader(token);
      const pem = await (await fetch(`${emulator.keyBaseUrl}/${createHash("sha256").update(String(kid)).digest("hex")}.pem`)).text();
      const { payload } = await jwtVerify(token, await importSPKI(pem, "RS256"), { audience: "jitsi-autoscaler" });
      reports.push({ route: c.req.param("route"), body: await c.req.json(), issuer: payload.iss });
      for (const arrival of arrivals.splice(0)) arrival();
      if (c.req.param("route") === "shutdown") return c.json({ save: "OK" });
      return c.json({ shutdown: reports.filter((report) => report.route === "status").length >= shutdownOnCheckIn, reconfigure: null });
    });
    await new Promise<void>((resolve) => {
      scaler = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
        scalerUrl = `http://127.0.0.1:${info.port}`;
        resolve();
      });
    });
  });

  afterAll(async () => {
    await emulator.stop();
    await new Promise((resolve) => scaler.close(resolve));
  });

  it("reports stats from its meetings with a verifiable RS256 token and powers off on shutdown", async () => {
    const server = emulator.addRunningServer({ name: "bbb-sidecar", cores: 4, ram: 8192 });
    emulator.cloud.startMeeting(server, { participants: 30, videos: 4, listenOnly: 6, durationMs: 3_600_000 });
    const started = await fetch(`${emulator.url}/_control/servers/${server.id}/sidecar`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ scalerUrl, group: "bbb-prod", intervalMs: 60_000 }),
    });
    expect(started.status).toBe(201);

    emulator.clock.advance(60_000);
    await received(1);
    expect(reports[0]).toMatchObject({
      route: "status",
      issuer: "jitsi-autoscaler-sidecar",
      body: {
        instance: { instanceId: server.id, group: "bbb-prod", instanceType: "BBB" },
        stats: { meetings: 1, participants: 30, videos: 4, listeners: 6 },
      },
    });
    expect(server.vmState).toBe("RUNNING");

    emulator.clock.advance(60_000);
    await received(3);
    expect(reports.slice(1).map((report) => report.route)).toEqual(["status", "shutdown"]);
    const deadline = Date.now() + 30_000;
    while (server.vmState !== "SHUTOFF" && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve));
    expect(server.vmState).toBe("SHUTOFF");
    expect(server.meetings.size).toBe(0);
  });
});
