import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { signedQuery } from "../emulator/checksum.js";
import { Emulator } from "../emulator/emulator.js";
import { serverLoad } from "../emulator/load-model.js";
import { PrometheusServer } from "../harness/prometheus.js";

const SERVER_COUNT = 50;
const SIZES = [
  { cores: 2, ram: 8192 },
  { cores: 4, ram: 16384 },
  { cores: 8, ram: 16384 },
] as const;

const vectorResult = z.object({
  status: z.literal("success"),
  data: z.object({
    resultType: z.literal("vector"),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) })),
  }),
});

/** A deterministic stream of meeting sizes (no Math.random: a failure must replay). */
function* meetingSizes(): Generator<{ participants: number; videos: number; listenOnly: number }> {
  let seed = 7;
  for (;;) {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    const participants = 3 + (seed % 40);
    yield { participants, videos: seed % 5, listenOnly: Math.floor(participants / 4) };
  }
}

describe("a real Prometheus scrapes 50 emulated node-exporters through one emulator process", () => {
  let emulator: Emulator;
  let prometheus: PrometheusServer;

  beforeAll(async () => {
    emulator = await Emulator.start({ clock: { kind: "real", scale: 1 } });
    for (let index = 0; index < SERVER_COUNT; index += 1) {
      emulator.addRunningServer({ name: `bbb-${index}`, ...SIZES[index % SIZES.length]! });
    }
    prometheus = await PrometheusServer.start([
      {
        job_name: "node",
        scrape_interval: "1s",
        http_sd_configs: [{ url: `${emulator.url}/_control/prometheus/targets`, refresh_interval: "1s" }],
      },
    ]);
  });

  afterAll(async () => {
    await prometheus?.stop();
    await emulator?.stop();
  });

  async function query(promql: string): Promise<Map<string, number>> {
    const response = await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
    const parsed = vectorResult.parse(await response.json());
    return new Map(parsed.data.result.map((sample) => [sample.metric.instance ?? "", Number(sample.value[1])]));
  }

  async function scalelite(action: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${emulator.scaleliteApiUrl}/${action}?${signedQuery(action, {}, emulator.scalelite.secret)}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    expect(response.ok).toBe(true);
    return response.json();
  }

  it("reports CPU, memory and network that match the meetings Scalelite placed", async () => {
    // Register every server in Scalelite, enable it, let the poller see it online, then place meetings.
    for (const server of emulator.cloud.servers.values()) {
      const added = z
        .object({ id: z.string() })
        .parse(await scalelite("addServer", { server: { url: emulator.bbbUrl(server.id), secret: emulator.cloud.bbbSecret } }));
      await scalelite("updateServer", { id: added.id, server: { state: "enable" } });
    }
    emulator.scalelite.poll();
    const sizes = meetingSizes();
    for (let index = 0; index < 150; index += 1) {
      const response = await fetch(`${emulator.url}/_control/meetings`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ ...sizes.next().value, durationMs: 3_600_000 }),
      });
      expect(response.status).toBe(201);
    }

    const expected = new Map<string, ReturnType<typeof serverLoad>>();
    for (const server of emulator.cloud.servers.values()) {
      expect(server.meetings.size).toBeGreaterThan(0);
      const ip = [...server.nics.values()][0]!.properties.ips[0]!;
      expected.set(`${ip}:9100`, serverLoad(server.cores, server.ram, server.meetings.values()));
    }

    // Wait (bounded) until Prometheus holds at least ten seconds of samples after the placement for every server.
    const cpuQuery =
      '1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[10s])) / sum by (instance) (rate(node_cpu_seconds_total[10s]))';
    const deadline = Date.now() + 90_000;
    for (;;) {
      const samples = await query("count_over_time(node_load1[10s])");
      const lowest = await query("min_over_time(node_load1[10s])");
      const settled = [...expected].every(
        ([instance, load]) => (samples.get(instance) ?? 0) >= 8 && Math.abs((lowest.get(instance) ?? -1) - load.busyCores) < 1e-6,
      );
      if (settled) break;
      if (Date.now() > deadline) throw new Error("Prometheus did not collect ten seconds of samples from every server in time");
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }

    const memory = await query("(node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes");
    const cpu = await query(cpuQuery);
    // Rates over wall-clock timestamps carry scrape latency, so network rates are taken per elapsed second
    // of the server's own CPU clock (all of a server's counters are sampled at the same instant): exact.
    const elapsedSeconds =
      'sum by (instance) (rate(node_cpu_seconds_total[10s])) / count by (instance) (node_cpu_seconds_total{mode="idle"})';
    const receive = await query(`sum by (instance) (rate(node_network_receive_bytes_total{device="ens6"}[10s])) / (${elapsedSeconds})`);
    const transmit = await query(`sum by (instance) (rate(node_network_transmit_bytes_total{device="ens6"}[10s])) / (${elapsedSeconds})`);
    expect(memory.size).toBe(SERVER_COUNT);
    for (const [instance, load] of expected) {
      expect(memory.get(instance)).toBeCloseTo(load.memoryUsedBytes / load.memoryTotalBytes, 6);
      expect(cpu.get(instance)).toBeCloseTo(load.cpuUtilisation, 4);
      expect(Math.abs(receive.get(instance)! / load.receiveBytesPerSecond - 1)).toBeLessThan(0.001);
      expect(Math.abs(transmit.get(instance)! / load.transmitBytesPerSecond - 1)).toBeLessThan(0.001);
    }
    const utilisations = [...expected.values()].map((load) => load.cpuUtilisation);
    expect(Math.max(...utilisations)).toBeGreaterThan(Math.min(...utilisations) + 0.05);
  });
});
