import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Alerter, OverloadWatch, alertSettingsSchema } from "../../scaler/alerts.js";
import { createLogger } from "../../scaler/log.js";
import { ScalerStore, connectRedis } from "../../scaler/store/store.js";
import { RedisServer } from "../harness/redis.js";

let redis: RedisServer;
let store: ScalerStore;
let receiver: Server;
let url: string;
/** What the receiver answers next, and what it got. */
let status = 200;
const received: unknown[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
  const client = connectRedis(redis.url, 1_000);
  if (client.status !== "ready") await new Promise((resolve) => client.once("ready", resolve));
  store = new ScalerStore(client, {
    keyPrefix: "alerts:",
    instanceTtl: { provisioningSeconds: 900, idleSeconds: 300, shuttingDownSeconds: 600 },
    retention: { stressPoints: 100, stressSeconds: 3600, auditEntries: 1000, instanceAuditSeconds: 3600, commandSeconds: 3600 },
  });
  receiver = createServer((request, response) => {
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (text += chunk));
    request.on("end", () => {
      received.push(JSON.parse(text));
      response.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
  await store?.close();
  await redis?.stop();
});

function alerter(now: () => number, settings: Record<string, unknown> = {}): Alerter {
  return new Alerter({
    settings: alertSettingsSchema.parse({ webhookUrl: url, retryDelayMs: 10, ...settings }),
    audit: ({ actor, ...entry }, server) => store.appendAudit("bbb", { ...entry, actor }, server),
    now,
    logger: createLogger("alerts-test", "silent"),
  });
}

describe("webhook alerts", () => {
  it("rate-limits per kind and server, and sends again after the interval", async () => {
    received.length = 0;
    status = 200;
    let now = Date.UTC(2026, 11, 7, 9, 0);
    const alerts = alerter(() => now, { minIntervalSeconds: 600 });
    expect(alerts.raise({ kind: "overload", fleet: "bbb", server: "bbb-1", message: "hot" })).toBe(true);
    expect(alerts.raise({ kind: "overload", fleet: "bbb", server: "bbb-1", message: "hot" })).toBe(false);
    expect(alerts.raise({ kind: "overload", fleet: "bbb", server: "bbb-2", message: "hot" })).toBe(true);
    expect(alerts.raise({ kind: "drain.timeout", fleet: "bbb", server: "bbb-1", message: "stuck" })).toBe(true);
    now += 600_000;
    expect(alerts.raise({ kind: "overload", fleet: "bbb", server: "bbb-1", message: "still hot" })).toBe(true);
    await alerts.settled();
    expect(received).toHaveLength(4);
    expect(received).toContainEqual({ kind: "overload", fleet: "bbb", server: "bbb-1", message: "hot", at: "2026-12-07T09:00:00.000Z" });
    expect(received).toContainEqual({
      kind: "drain.timeout",
      fleet: "bbb",
      server: "bbb-1",
      message: "stuck",
      at: "2026-12-07T09:00:00.000Z",
    });
    const trail = await store.readAudit("bbb", { instanceId: "bbb-1" });
    expect(trail.filter((entry) => entry.kind === "alert.sent")).toHaveLength(3);
  });

  it("gives up after its tries and audits alert.failed, without holding up the caller", async () => {
    received.length = 0;
    status = 500;
    const alerts = alerter(Date.now, { attempts: 3 });
    expect(alerts.raise({ kind: "up.failed", fleet: "bbb", message: "refused" })).toBe(true);
    // raise returned before any POST was answered.
    expect(received).toHaveLength(0);
    await alerts.settled();
    expect(received).toHaveLength(3);
    const [failed] = (await store.readAudit("bbb")).filter((entry) => entry.kind === "alert.failed");
    expect(failed).toMatchObject({ actor: "alerts", details: { alert: "up.failed", attempts: 3 } });
    expect(failed?.message).toMatch(/not delivered after 3 tries: answered 500/);
  });

  it("refuses a webhook URL that is not http(s), naming the key", () => {
    const result = alertSettingsSchema.safeParse({ webhookUrl: "ftp://example.org/x" });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.path).toEqual(["webhookUrl"]);
  });
});

describe("overload watch", () => {
  const reading = (value: number) => ({ value, status: "fresh" });
  const server = (id: string, cpu: number, memory = 0.2) => ({ id, cpu: reading(cpu), memory: reading(memory) });
  const limits = { cpu: 0.8, memory: 0.85 };

  it("names a server only once it has been above the threshold for the sustain periods in a row", () => {
    const watch = new OverloadWatch();
    expect(watch.observe([server("a", 0.9), server("b", 0.5)], limits, 2)).toEqual([]);
    expect(watch.observe([server("a", 0.95), server("b", 0.9, 0.9)], limits, 2)).toEqual(["a"]);
    // A dip resets the streak; a stale reading never counts.
    expect(watch.observe([server("a", 0.5), { id: "b", cpu: { value: 0.99, status: "stale" }, memory: reading(0.1) }], limits, 2)).toEqual(
      [],
    );
    expect(watch.observe([server("a", 0.9), server("b", 0.9)], limits, 2)).toEqual([]);
  });
});
