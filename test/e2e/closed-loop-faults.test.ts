import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Emulator } from "../emulator/emulator.js";
import { closedLoopPolicy, openClosedLoop } from "../harness/fleetRig.js";
import { PrometheusServer, type ScrapeJob } from "../harness/prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";
import { RedisServer } from "../harness/redis.js";

const MINUTE = 60_000;

describe("closed loop under faults (real Redis, Prometheus, CLI, emulator)", () => {
  let emulator: Emulator;
  let redisServer: RedisServer;
  let prometheus: PrometheusServer;
  let sandbox: PulumiSandbox;
  let scrapeJobs: ScrapeJob[];

  beforeEach(async () => {
    emulator = await Emulator.start({
      clock: { kind: "real", scale: 60 },
      timings: { requestQueuedMs: 1_000, requestRunningMs: 5_000, bootMs: 2 * MINUTE },
    });
    redisServer = await RedisServer.start();
    scrapeJobs = [
      { job_name: "workers", http_sd_configs: [{ url: `${emulator.url}/_control/prometheus/targets`, refresh_interval: "1s" }] },
    ];
    prometheus = await PrometheusServer.start(scrapeJobs);
    sandbox = await createPulumiSandbox();
  });

  afterEach(async () => {
    await prometheus?.stop();
    await emulator?.stop();
    await redisServer?.stop();
    await sandbox?.cleanup();
  });

  const servers = () => [...emulator.cloud.servers.values()].map((server) => emulator.serverView(server));
  const enabled = () => [...emulator.scalelite.servers.values()].filter((entry) => entry.state === "enabled");

  it(
    "replaces a server stuck booting once its build timeout passes, with the reason in the audit trail",
    { timeout: 600_000 },
    async () => {
      const policy = closedLoopPolicy();
      emulator.cloud.faults.add({ kind: "stuckBooting", count: 1 });
      const loop = await openClosedLoop({
        emulator,
        sandbox,
        redisUrl: redisServer.url,
        prometheusUrl: prometheus.url,
        policy,
        buildTimeoutSeconds: (10 * MINUTE) / 1000,
      });
      try {
        await loop.actuator.start();
        for (let count = 0; count < 25 && enabled().length === 0; count += 1) {
          await loop.period();
          emulator.scalelite.poll();
        }
        expect(servers().map((server) => server.name)).toEqual(["bbb-2"]);
        expect(enabled()).toHaveLength(1);
        const replaced = (await loop.store.readAudit("bbb", { instanceId: "bbb-1" })).find((entry) => entry.kind === "act.replace");
        expect(replaced?.message).toMatch(/not healthy .* after start \(build timeout 600 s\): replaced by bbb-2/);
      } finally {
        await loop.close();
      }
    },
  );

  it("never scales in while Prometheus is unreachable, and does once it is back", { timeout: 600_000 }, async () => {
    // Two servers kept while the fleet comes up (min 2, read every period); then the minimum drops to 1 and only
    // the outage stands between the idle fleet and a scale-in.
    const policy = closedLoopPolicy({ min: 2, baseline: 2 });
    const loop = await openClosedLoop({ emulator, sandbox, redisUrl: redisServer.url, prometheusUrl: prometheus.url, policy });
    const scaleIn = () =>
      loop.periods.flatMap((period) => period.outcome.decisions).filter((decision) => ["drain", "stop", "destroy"].includes(decision.kind));
    try {
      await loop.actuator.start();
      for (let count = 0; count < 25 && enabled().length < 2; count += 1) {
        await loop.period();
        emulator.scalelite.poll();
      }
      expect(enabled()).toHaveLength(2);
      const graceEnds =
        Math.max(...Object.values(loop.actuator.currentState().servers).map((record) => record.bootedAt ?? 0)) + policy.graceSeconds * 1000;
      while (emulator.clock.now() <= graceEnds) await new Promise((resolve) => setTimeout(resolve, 100));
      await loop.setPolicy({ min: 1 });

      const port = prometheus.port;
      await prometheus.stop();
      const before = loop.periods.length;
      for (let count = 0; count < 8; count += 1) await loop.period();
      expect(loop.periods.length - before).toBe(8);
      expect(scaleIn()).toEqual([]);
      expect(servers().filter((server) => server.vmState === "RUNNING")).toHaveLength(2);
      expect(enabled()).toHaveLength(2);

      prometheus = await PrometheusServer.start(scrapeJobs, { port });
      for (let count = 0; count < 25 && scaleIn().length === 0; count += 1) await loop.period();
      expect(scaleIn().map((decision) => decision.kind)).toContain("drain");
    } finally {
      await loop.close();
    }
  });
});
