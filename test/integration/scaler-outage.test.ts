import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeLoopbackPort } from "../harness/ports.js";
import { startUntilReady, type ManagedProcess } from "../harness/process.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, eventually, groupBody, signSidecarToken } from "./scaler-fixture.js";

let redis: RedisServer;
let keys: KeyServer;
let scaler: ManagedProcess;
let configDir: string;
let url: string;
let sidecarToken: string;

/** The real entry point (`npm run scaler`), configured by a file plus the environment. */
beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  sidecarToken = await signSidecarToken(await keys.newKey("sidecar-outage"));
  configDir = await mkdtemp(join(tmpdir(), "confscale-scaler-"));
  const configFile = join(configDir, "scaler.yaml");
  await writeFile(
    configFile,
    `redis:\n  keyPrefix: "outage:"\n  commandTimeoutMs: 1000\nsidecar:\n  keyBaseUrl: ${keys.baseUrl}\nshutdownGraceMs: 5000\n`,
  );
  const port = await freeLoopbackPort();
  url = `http://127.0.0.1:${port}`;
  // Node itself with tsx's loader, as in the container: SIGTERM reaches the scaler without a wrapper process.
  scaler = await startUntilReady(process.execPath, ["--import", "tsx", "scaler/main.ts"], /scaler listening/, {
    env: {
      ...process.env,
      SCALER_CONFIG: configFile,
      SCALER_REDIS_URL: redis.url,
      SCALER_LISTEN_HOST: "127.0.0.1",
      SCALER_LISTEN_PORT: String(port),
      SCALER_API_TOKENS: `alice:admin:${TOKENS.admin}`,
    },
    timeoutMs: 60_000,
  });
  await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, "scaler ready");
});

afterAll(async () => {
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
  if (configDir !== undefined) await rm(configDir, { recursive: true, force: true });
});

const instance = { instanceId: "jvb-outage", instanceType: "JVB", group: "survivors" };
const poll = () => call(url, "POST", "/sidecar/poll", { token: sidecarToken, body: instance });

describe("a Redis outage", () => {
  it("answers 503 while Redis is down and recovers by itself when it is back", async () => {
    expect((await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("survivors", "JVB") })).status).toBe(201);
    expect((await poll()).status).toBe(200);

    await redis.pause();
    const during = await poll();
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ error: "unavailable" });
    expect((await call(url, "GET", "/api/v1/groups", { token: TOKENS.admin })).status).toBe(503);
    expect((await fetch(`${url}/readyz`)).status).toBe(503);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(scaler.child.exitCode).toBeNull();

    await redis.resume();
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 60_000, "readyz after the restart");
    // This Redis keeps nothing across a restart: the group is defined again, then check-ins flow as before.
    expect((await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("survivors", "JVB") })).status).toBe(201);
    expect(await poll()).toEqual({ status: 200, body: { shutdown: false, reconfigure: null } });
  });

  it("exposes metrics for Prometheus", async () => {
    const response = await fetch(`${url}/metrics`);
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(text).toContain('confscale_sidecar_checkins_total{group="survivors",instance_type="JVB",kind="poll"}');
    expect(text).toContain('confscale_live_instances{group="survivors",state="running"} 1');
    expect(text).toMatch(/confscale_http_request_duration_seconds_count\{method="POST",route="\/sidecar\/poll",status="503"\} [1-9]/);
    expect(text).toContain("confscale_decisions_total");
  });

  it("logs a fault that repeats during an outage once per interval, not once per request", async () => {
    const linesOf = (event: string) =>
      scaler
        .output()
        .split("\n")
        .filter((line) => line.includes(`"event":"${event}"`)).length;
    const before = linesOf("redis.unavailable");
    await redis.pause();
    try {
      for (let round = 0; round < 20; round++) {
        const replies = await Promise.all(Array.from({ length: 10 }, () => poll()));
        expect(replies.map((reply) => reply.status)).toEqual(Array(10).fill(503));
      }
      expect(linesOf("redis.unavailable") - before).toBeLessThanOrEqual(2);
    } finally {
      await redis.resume();
    }
    await eventually(async () => (await fetch(`${url}/readyz`)).status === 200, 60_000, "readyz after the restart");
  });

  it("stops on SIGTERM: closes its listener and Redis and exits cleanly", async () => {
    const exited = new Promise<number | null>((resolve) => scaler.child.once("exit", (code) => resolve(code)));
    scaler.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(scaler.output()).toContain("scaler stopped");
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
