import { createServer, type Server } from "node:net";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeLoopbackPort } from "../harness/ports.js";
import { commandLine, listProcesses } from "../harness/proc.js";
import { startUntilReady, type ManagedProcess } from "../harness/process.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, eventually, groupBody, signSidecarToken } from "./scaler-fixture.js";

let redis: RedisServer;
let keys: KeyServer;
let sidecarToken: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  sidecarToken = await signSidecarToken(await keys.newKey("sidecar-workers"));
});

afterAll(async () => {
  await keys?.stop();
  await redis?.stop();
});

/** The real entry point with check-in workers, configured by the environment alone. */
async function startScalerWithWorkers(port: number, workersPort: number, prefix: string): Promise<ManagedProcess> {
  return startUntilReady(process.execPath, ["--import", "tsx", "scaler/main.ts"], /scaler listening/, {
    env: {
      ...process.env,
      SCALER_REDIS_URL: redis.url,
      SCALER_KEY_PREFIX: prefix,
      SCALER_ASAP_KEY_BASE_URL: keys.baseUrl,
      SCALER_LISTEN_HOST: "127.0.0.1",
      SCALER_LISTEN_PORT: String(port),
      SCALER_API_TOKENS: `alice:admin:${TOKENS.admin}`,
      SCALER_SIDECAR_WORKERS: "2",
      SCALER_SIDECAR_PORT: String(workersPort),
    },
    timeoutMs: 60_000,
  });
}

/** The pids of a scaler's live check-in workers (tsx's compiler service is a child too). */
async function workerPids(scaler: ManagedProcess): Promise<number[]> {
  const children = ((await listProcesses()) ?? []).filter((process) => process.parent === scaler.child.pid && process.state !== "Z");
  const workers: number[] = [];
  for (const child of children) if ((await commandLine(child.pid)).includes("sidecarWorker.ts")) workers.push(child.pid);
  return workers;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const statusReport = (instanceId: string) => ({
  instance: { instanceId, instanceType: "JVB", group: "many-cores" },
  stats: { stress_level: 0.25, participants: 12 },
  timestamp: Date.now(),
});

describe("check-in workers (sidecar.workers)", () => {
  let scaler: ManagedProcess;
  let url: string;
  let workersUrl: string;

  beforeAll(async () => {
    const port = await freeLoopbackPort();
    const workersPort = await freeLoopbackPort();
    url = `http://127.0.0.1:${port}`;
    workersUrl = `http://127.0.0.1:${workersPort}`;
    scaler = await startScalerWithWorkers(port, workersPort, "workers:");
  });

  afterAll(async () => {
    await scaler?.stop();
  });

  it("serves check-ins on their own port, records them in Redis and counts them in the main process's metrics", async () => {
    expect((await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("many-cores", "JVB") })).status).toBe(201);
    expect(await workerPids(scaler)).toHaveLength(2);

    // Sent together, so that they travel on several connections, which the workers share.
    const replies = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        call(workersUrl, "POST", "/sidecar/status", { token: sidecarToken, body: statusReport(`jvb-${index}`) }),
      ),
    );
    expect(replies.map((reply) => reply.status)).toEqual(Array(12).fill(200));
    expect(replies[0]?.body).toEqual({ shutdown: false, reconfigure: null });

    const report = await call(url, "GET", "/api/v1/groups/many-cores/report", { token: TOKENS.admin });
    expect(report.body).toMatchObject({ counts: { running: 12 } });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('confscale_sidecar_checkins_total{group="many-cores",instance_type="JVB",kind="status"} 12');
    expect(metrics).toMatch(/confscale_http_request_duration_seconds_count\{method="POST",route="\/sidecar\/status",status="200"\} 12\n/);
    expect(metrics).toContain('confscale_live_instances{group="many-cores",state="running"} 12');
  });

  it("keeps idle connections open longer than a proxy keeps its upstream connections, on both ports", async () => {
    for (const base of [url, workersUrl]) {
      const response = await fetch(`${base}/healthz`);
      expect(response.headers.get("keep-alive")).toBe("timeout=130");
    }
  });

  it("refuses the control API and bad tokens on the workers' port", async () => {
    expect((await call(workersUrl, "GET", "/api/v1/groups", { token: TOKENS.admin })).status).toBe(404);
    const refused = await call(workersUrl, "POST", "/sidecar/status", { token: TOKENS.admin, body: statusReport("jvb-0") });
    expect(refused.status).toBe(401);
    expect((await call(workersUrl, "GET", "/readyz")).status).toBe(200);
  });

  it("fails a scrape with 503 while a worker cannot hand over its metrics, and serves it again once it can", async () => {
    const [frozen] = await workerPids(scaler);
    process.kill(frozen as number, "SIGSTOP");
    try {
      const response = await fetch(`${url}/metrics`);
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({
        error: "unavailable",
        message: expect.stringContaining("did not report their metrics"),
      });
    } finally {
      process.kill(frozen as number, "SIGCONT");
    }
    const after = await fetch(`${url}/metrics`);
    expect(after.status).toBe(200);
    expect(await after.text()).toContain('confscale_sidecar_checkins_total{group="many-cores",instance_type="JVB",kind="status"} 12');
  });

  it("replaces a worker that dies, and check-ins go on", async () => {
    const before = await workerPids(scaler);
    const victim = before[0] as number;
    process.kill(victim, "SIGKILL");
    await eventually(async () => scaler.output().includes("check-in worker replaced"), 60_000, "a replacement worker");
    const after = await workerPids(scaler);
    expect(after).toHaveLength(2);
    expect(after).not.toContain(victim);
    expect(scaler.output()).toContain('"event":"sidecar_worker.exited"');

    const replies = await Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        call(workersUrl, "POST", "/sidecar/status", { token: sidecarToken, body: statusReport(`jvb-${index}`) }),
      ),
    );
    expect(replies.map((reply) => reply.status)).toEqual(Array(6).fill(200));
  });

  it("stops its workers with itself on SIGTERM", async () => {
    const workers = await workerPids(scaler);
    expect(workers).toHaveLength(2);
    const exited = new Promise<number | null>((resolve) => scaler.child.once("exit", (code) => resolve(code)));
    scaler.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(scaler.output()).toContain("scaler stopped");
    expect(workers.filter(isAlive)).toEqual([]);
    await expect(fetch(`${workersUrl}/healthz`)).rejects.toThrow();
  });
});

describe("check-in workers that cannot listen", () => {
  let blocker: Server;

  afterAll(async () => {
    blocker?.close();
  });

  it("stop the scaler from starting, with the reason in its log", async () => {
    const port = await freeLoopbackPort();
    const busyPort = await freeLoopbackPort();
    blocker = createServer().listen(busyPort, "127.0.0.1");
    await once(blocker, "listening");

    const failed = startScalerWithWorkers(port, busyPort, "workers-busy:");
    await expect(failed).rejects.toThrow(/exited \(code 1/);
    await expect(failed).rejects.toThrow(/check-in worker cannot listen/);
    await expect(failed).rejects.toThrow(/before it listened on 127\.0\.0\.1:\d+/);
  });
});
