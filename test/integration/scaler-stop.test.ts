import { Agent, request } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeLoopbackPort } from "../harness/ports.js";
import { startUntilReady, type ManagedProcess } from "../harness/process.js";
import { RedisServer } from "../harness/redis.js";
import { KeyServer, TOKENS, call, eventually, groupBody, signSidecarToken } from "./scaler-fixture.js";

const GRACE_MS = 30_000;

let redis: RedisServer;
let keys: KeyServer;
let scaler: ManagedProcess;
let configDir: string;
let url: string;
let workersUrl: string;
let sidecarToken: string;

beforeAll(async () => {
  redis = await RedisServer.start();
  keys = await KeyServer.start();
  sidecarToken = await signSidecarToken(await keys.newKey("sidecar-stop"));
  configDir = await mkdtemp(join(tmpdir(), "confscale-scaler-stop-"));
  const configFile = join(configDir, "scaler.yaml");
  await writeFile(configFile, `shutdownGraceMs: ${GRACE_MS}\n`);
  const port = await freeLoopbackPort();
  const workersPort = await freeLoopbackPort();
  url = `http://127.0.0.1:${port}`;
  workersUrl = `http://127.0.0.1:${workersPort}`;
  scaler = await startUntilReady(process.execPath, ["--import", "tsx", "scaler/main.ts"], /scaler listening/, {
    env: {
      ...process.env,
      SCALER_CONFIG: configFile,
      SCALER_REDIS_URL: redis.url,
      SCALER_KEY_PREFIX: "stop:",
      SCALER_ASAP_KEY_BASE_URL: keys.baseUrl,
      SCALER_LISTEN_HOST: "127.0.0.1",
      SCALER_LISTEN_PORT: String(port),
      SCALER_API_TOKENS: `alice:admin:${TOKENS.admin}`,
      SCALER_SIDECAR_WORKERS: "1",
      SCALER_SIDECAR_PORT: String(workersPort),
    },
    timeoutMs: 60_000,
  });
  expect((await call(url, "POST", "/api/v1/groups", { token: TOKENS.admin, body: groupBody("stopping", "JVB") })).status).toBe(201);
});

afterAll(async () => {
  await scaler?.stop();
  await keys?.stop();
  await redis?.stop();
  if (configDir !== undefined) await rm(configDir, { recursive: true, force: true });
});

/** A sidecar that polls back to back on one kept-alive connection until the scaler stops answering. */
class BusySidecar {
  readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  answered = 0;
  readonly done: Promise<void>;

  constructor(base: string, instanceId: string) {
    const body = JSON.stringify({ instanceId, instanceType: "JVB", group: "stopping" });
    this.done = (async () => {
      for (;;) {
        const answered = await this.poll(base, body).then(
          () => true,
          () => false,
        );
        if (!answered) return;
        this.answered += 1;
      }
    })();
  }

  private poll(base: string, body: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const outgoing = request(
        `${base}/sidecar/poll`,
        {
          method: "POST",
          agent: this.agent,
          headers: {
            authorization: `Bearer ${sidecarToken}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (response) => {
          response.resume();
          response.once("end", () => resolve());
          response.once("error", reject);
        },
      );
      outgoing.once("error", reject);
      outgoing.end(body);
    });
  }
}

describe("a graceful stop under keep-alive load", () => {
  // Each connection is closed when idle, or after its answer in flight, which says `Connection: close`.
  it("closes kept-alive connections on both ports and exits long before the grace time", async () => {
    const sidecars = [url, url, workersUrl, workersUrl].map((base, index) => new BusySidecar(base, `jvb-${index}`));
    await eventually(async () => sidecars.every((sidecar) => sidecar.answered >= 3), 30_000, "every sidecar answered");

    const started = Date.now();
    const exited = new Promise<number | null>((resolve) => scaler.child.once("exit", (code) => resolve(code)));
    scaler.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    const took = Date.now() - started;
    await Promise.all(sidecars.map((sidecar) => sidecar.done));

    expect(took).toBeLessThan(GRACE_MS / 2);
    expect(scaler.output()).not.toContain("stop.deadline");
    for (const sidecar of sidecars) sidecar.agent.destroy();
  }, 90_000);
});
