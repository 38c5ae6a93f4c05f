import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PrometheusServer } from "../harness/prometheus.js";
import { PrometheusClient, type WorkerMetrics } from "../../scaler/signals/prometheus.js";
import { buildSnapshot, type FleetMember } from "../../scaler/signals/snapshot.js";
import { SignalError } from "../../scaler/signals/http.js";

/** A node-exporter-format endpoint whose CPU counters advance at a set busy fraction per second of wall time. */
class FakeNodeExporter {
  private readonly startedAt = performance.now();
  private server: Server | undefined;

  constructor(
    private readonly cores: number,
    private readonly busy: number,
    private readonly memTotal: number,
    private readonly memAvailable: number,
    private readonly networkBytesPerSecond: number,
  ) {}

  async start(): Promise<string> {
    this.server = createServer((_request, response) => {
      response.writeHead(200, { "content-type": "text/plain; version=0.0.4" });
      response.end(this.exposition());
    });
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private exposition(): string {
    const seconds = (performance.now() - this.startedAt) / 1000 + 1000;
    const lines = ["# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.", "# TYPE node_cpu_seconds_total counter"];
    for (let cpu = 0; cpu < this.cores; cpu += 1) {
      lines.push(`node_cpu_seconds_total{cpu="${cpu}",mode="idle"} ${(seconds * (1 - this.busy)).toFixed(3)}`);
      lines.push(`node_cpu_seconds_total{cpu="${cpu}",mode="user"} ${(seconds * this.busy).toFixed(3)}`);
    }
    lines.push("# TYPE node_memory_MemTotal_bytes gauge", `node_memory_MemTotal_bytes ${this.memTotal}`);
    lines.push("# TYPE node_memory_MemAvailable_bytes gauge", `node_memory_MemAvailable_bytes ${this.memAvailable}`);
    lines.push(
      "# TYPE node_network_receive_bytes_total counter",
      `node_network_receive_bytes_total{device="eth0"} ${(seconds * this.networkBytesPerSecond * 0.75).toFixed(0)}`,
    );
    lines.push(`node_network_receive_bytes_total{device="lo"} ${(seconds * 1e9).toFixed(0)}`);
    lines.push(
      "# TYPE node_network_transmit_bytes_total counter",
      `node_network_transmit_bytes_total{device="eth0"} ${(seconds * this.networkBytesPerSecond * 0.25).toFixed(0)}`,
    );
    return lines.join("\n") + "\n";
  }
}

const GB = 1024 ** 3;
const exporters = {
  busy: new FakeNodeExporter(4, 0.8, 16 * GB, 4 * GB, 2_000_000),
  quiet: new FakeNodeExporter(2, 0.1, 8 * GB, 6 * GB, 100_000),
};
const targets: Record<string, string> = {};
let prometheus: PrometheusServer;
let client: PrometheusClient;

/**
 * Polls until the rate window of every exporter is full of scrapes (a rate over a half-empty window is
 * extrapolated low), within a generous deadline.
 */
async function metricsOfAll(deadlineMs: number): Promise<Map<string, WorkerMetrics>> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const scrapes = await client.query("count_over_time(node_memory_MemTotal_bytes[10s])");
    const windowFull = Object.values(targets).every(
      (target) => (scrapes.find((sample) => sample.labels.instance === target)?.value ?? 0) >= 9,
    );
    const metrics = await client.workerMetrics();
    const complete =
      windowFull &&
      Object.values(targets).every((target) => {
        const values = metrics.get(target);
        return values?.cpu !== undefined && values.memory !== undefined && values.networkBytesPerSecond !== undefined;
      });
    if (complete) return metrics;
    if (Date.now() > deadline)
      throw new Error(`Prometheus had no complete metrics after ${deadlineMs} ms: ${JSON.stringify([...metrics])}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe("Prometheus signals against a real Prometheus", () => {
  beforeAll(async () => {
    for (const [name, exporter] of Object.entries(exporters)) targets[name] = await exporter.start();
    prometheus = await PrometheusServer.start([{ job_name: "node", static_configs: [{ targets: Object.values(targets) }] }], {
      scrapeInterval: "1s",
    });
    client = new PrometheusClient({ baseUrl: prometheus.url, timeoutMs: 10_000, rateWindow: "10s" });
  });

  afterAll(async () => {
    await prometheus?.stop();
    for (const exporter of Object.values(exporters)) await exporter.stop();
  });

  it("reads CPU, memory and network per worker as the endpoints serve them", async () => {
    const metrics = await metricsOfAll(90_000);
    const busy = metrics.get(targets.busy ?? "");
    const quiet = metrics.get(targets.quiet ?? "");
    expect(busy?.cpu).toBeCloseTo(0.8, 1);
    expect(quiet?.cpu).toBeCloseTo(0.1, 1);
    expect(busy?.memory).toBeCloseTo(0.75, 5);
    expect(quiet?.memory).toBeCloseTo(0.25, 5);
    // eth0 only (the loopback device's 1 GB/s is left out); a rate is extrapolated from scrapes, hence the band.
    expect((busy?.networkBytesPerSecond ?? 0) / 2_000_000).toBeGreaterThan(0.8);
    expect((busy?.networkBytesPerSecond ?? 0) / 2_000_000).toBeLessThan(1.2);
    expect((quiet?.networkBytesPerSecond ?? 0) / 100_000).toBeGreaterThan(0.8);
    expect((quiet?.networkBytesPerSecond ?? 0) / 100_000).toBeLessThan(1.2);
  });

  it("builds a snapshot in which each server carries its own metrics, fresh, and an unknown one is missing", async () => {
    const metrics = await metricsOfAll(90_000);
    const member = (id: string, instance: string): FleetMember => ({
      id,
      size: { cores: 4, ramGb: 16 },
      power: "running",
      bootedAt: 0,
      resizedAt: null,
      instance,
      scaleliteId: id,
    });
    const takenAt = Date.now();
    const snapshot = buildSnapshot({
      group: "bbb",
      takenAt,
      canPowerOff: true,
      fleet: [member("bbb-1", targets.busy ?? ""), member("bbb-2", targets.quiet ?? ""), member("bbb-3", "127.0.0.1:1")],
      metrics: { at: takenAt, value: metrics },
      meetings: new Map([["bbb-1", { at: takenAt - 600_000, value: { meetings: 3, participants: 70, videos: 4 } }]]),
      checkIns: new Map(),
      freshForMs: 120_000,
    });
    const [first, second, third] = snapshot.servers;
    expect(first?.cpu.status).toBe("fresh");
    expect(first?.cpu.value).toBeCloseTo(0.8, 1);
    expect(second?.memory).toEqual({ value: expect.closeTo(0.25, 5), status: "fresh" });
    expect(third?.cpu).toEqual({ value: null, status: "missing" });
    expect(first?.meetings).toEqual({ value: 3, status: "stale" });
    expect(second?.meetings.status).toBe("missing");
    expect(first?.scaleliteStatus).toBe("missing");
  });

  it("answers a range query with a series per worker", async () => {
    await metricsOfAll(90_000);
    const end = Math.floor(Date.now() / 1000);
    const series = await client.queryRange("1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes", end - 5, end, 1);
    expect(series.map((one) => one.labels.instance).sort()).toEqual(Object.values(targets).sort());
    expect(series[0]?.points.length).toBeGreaterThan(0);
  });

  it("reports a bad query as a typed error with the URL but not the query string", async () => {
    const error = await client.query("sum(").catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SignalError);
    expect((error as SignalError).status).toBe(400);
    expect((error as SignalError).url).toBe(`${prometheus.url}/api/v1/query`);
  });
});
