import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { closedLoopPolicy, openClosedLoop } from "../harness/fleetRig.js";
import { PrometheusServer } from "../harness/prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";

/** A webhook receiver on loopback: answers the first `failFirst` POSTs 503 (to be retried), then 200; keeps every body. */
async function startReceiver(
  failFirst: number,
): Promise<{ url: string; bodies: unknown[]; posts: () => number; stop: () => Promise<void> }> {
  const bodies: unknown[] = [];
  let posts = 0;
  const server: Server = createServer((request, response) => {
    let text = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => (text += chunk));
    request.on("end", () => {
      posts += 1;
      if (posts <= failFirst) return void response.writeHead(503).end();
      bodies.push(JSON.parse(text));
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`,
    bodies,
    posts: () => posts,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe("alerts to a webhook (real Pulumi CLI, Redis, Prometheus, emulated cloud)", () => {
  let emulator: Emulator;
  let redis: RedisServer;
  let prometheus: PrometheusServer;
  let sandbox: PulumiSandbox;

  beforeAll(async () => {
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
    redis = await RedisServer.start();
    prometheus = await PrometheusServer.start([]);
    sandbox = await createPulumiSandbox();
  });

  afterAll(async () => {
    await prometheus?.stop();
    await emulator?.stop();
    await redis?.stop();
    await sandbox?.cleanup();
  });

  it(
    "posts one up.failed alert when an up fails, after retrying the receiver, audited; a second failure is rate-limited",
    { timeout: 300_000 },
    async () => {
      const receiver = await startReceiver(1);
      // Another environment's machine holds the name the fleet's first server needs: the provider refuses the create.
      const foreign = emulator.addRunningServer({ datacenterId: emulator.defaultDatacenterId, name: "bbb-1", cores: 4, ram: 16384 });
      foreign.labels.set("confscale:env", "staging");
      foreign.labels.set("confscale:role", "worker");
      const loop = await openClosedLoop({
        emulator,
        sandbox,
        redisUrl: redis.url,
        prometheusUrl: prometheus.url,
        policy: closedLoopPolicy(),
        alerts: { webhookUrl: receiver.url, retryDelayMs: 50 },
      });
      try {
        await loop.actuator.start();
        await expect(loop.controller.period()).rejects.toThrow(/create server bbb-1 refused/);
        await loop.alerter.settled();
        expect(receiver.posts()).toBe(2);
        expect(receiver.bodies).toEqual([
          {
            kind: "up.failed",
            fleet: "bbb",
            message: expect.stringMatching(/up of fleet stack .* failed: .*create server bbb-1 refused/s),
            at: expect.any(String),
          },
        ]);
        const at = Date.parse((receiver.bodies[0] as { at: string }).at);
        expect(Math.abs(at - emulator.clock.now())).toBeLessThan(60_000);
        const sent = (await loop.store.readAudit("bbb")).find((entry) => entry.kind === "alert.sent");
        expect(sent).toMatchObject({ actor: "alerts", details: { alert: "up.failed", attempts: 2 } });
        expect(JSON.stringify(sent)).not.toContain(receiver.url);

        await expect(loop.controller.period()).rejects.toThrow(/refused/);
        await loop.alerter.settled();
        expect(receiver.posts()).toBe(2);
      } finally {
        await loop.close();
        await receiver.stop();
      }
    },
  );
});
