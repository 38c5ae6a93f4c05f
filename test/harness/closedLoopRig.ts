import { afterAll, beforeAll } from "vitest";
import { Emulator, type EmulatorOptions } from "../emulator/emulator.js";
import { openClosedLoop } from "./fleetRig.js";
import { freeLoopbackPort } from "./ports.js";
import { PrometheusServer } from "./prometheus.js";
import { createPulumiSandbox, type PulumiSandbox } from "./pulumi.js";
import { RedisServer } from "./redis.js";

type LoopOptions = Omit<Parameters<typeof openClosedLoop>[0], "emulator" | "sandbox" | "redisUrl" | "prometheusUrl" | "scalerPort">;
type ClosedLoop = Awaited<ReturnType<typeof openClosedLoop>>;

/** The parts of a running closed loop; read them inside tests (they are set once the block's beforeAll has run). */
export interface ClosedLoopRig {
  emulator: Emulator;
  redis: RedisServer;
  prometheus: PrometheusServer;
  sandbox: PulumiSandbox;
  loop: ClosedLoop;
  scalerPort: number;
  /** Periods (each followed by Scalelite's poll) until `done` holds, failing after `limit` with the fleet's phases. */
  periodsUntil(what: string, done: () => boolean, limit?: number): Promise<void>;
}

/** Prometheus finds the workers through the scaler's own http_sd endpoint, as on the control node. */
export function workersJob(scalerPort: number, jobName = "workers"): Record<string, unknown> {
  return { job_name: jobName, http_sd_configs: [{ url: `http://127.0.0.1:${scalerPort}/fleets/bbb/targets`, refresh_interval: "1s" }] };
}

/**
 * A fleet's closed loop with everything it runs on, for one describe block: the emulator, a real Redis, a real
 * Prometheus (scraping the workers through the scaler's http_sd, or the jobs given), a Pulumi sandbox and the loop
 * serving HTTP. Started in beforeAll (after `before`, with the emulator running) and stopped in afterAll.
 */
export function useClosedLoop(options: {
  emulator: EmulatorOptions;
  loop: (emulator: Emulator) => LoopOptions | Promise<LoopOptions>;
  scrapeJobs?: (scalerPort: number) => Record<string, unknown>[];
}): ClosedLoopRig {
  const rig = {} as ClosedLoopRig;
  beforeAll(async () => {
    rig.emulator = await Emulator.start(options.emulator);
    rig.redis = await RedisServer.start();
    rig.scalerPort = await freeLoopbackPort();
    rig.prometheus = await PrometheusServer.start((options.scrapeJobs ?? ((port) => [workersJob(port)]))(rig.scalerPort) as never);
    rig.sandbox = await createPulumiSandbox();
    rig.loop = await openClosedLoop({
      ...(await options.loop(rig.emulator)),
      emulator: rig.emulator,
      sandbox: rig.sandbox,
      redisUrl: rig.redis.url,
      prometheusUrl: rig.prometheus.url,
      scalerPort: rig.scalerPort,
    });
  });
  afterAll(async () => {
    await rig.loop?.close();
    await rig.prometheus?.stop();
    await rig.emulator?.stop();
    await rig.redis?.stop();
    await rig.sandbox?.cleanup();
  });
  rig.periodsUntil = async (what, done, limit = 25) => {
    for (let count = 0; count < limit && !done(); count += 1) {
      await rig.loop.period();
      rig.emulator.scalelite.poll();
    }
    if (done()) return;
    const phases = rig.loop.controller.status().servers.map((server) => `${server.name} ${server.phase}`);
    const holds = rig.loop.periods.at(-1)?.outcome.holds ?? [];
    throw new Error(`${what}: not reached after ${limit} periods; servers ${JSON.stringify(phases)}; last holds ${JSON.stringify(holds)}`);
  };
  return rig;
}
