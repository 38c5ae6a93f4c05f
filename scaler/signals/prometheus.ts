import { z } from "zod";
import { parseJson, requestText, SignalError, safeUrl } from "./http.js";

const sampleValue = z.tuple([z.number(), z.string()]);
const vectorResult = z.array(z.strictObject({ metric: z.record(z.string(), z.string()), value: sampleValue }));
const matrixResult = z.array(z.strictObject({ metric: z.record(z.string(), z.string()), values: z.array(sampleValue) }));

const queryResponse = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("success"),
    data: z.discriminatedUnion("resultType", [
      z.object({ resultType: z.literal("vector"), result: vectorResult }),
      z.object({ resultType: z.literal("matrix"), result: matrixResult }),
      z.object({ resultType: z.literal("scalar"), result: sampleValue }),
      z.object({ resultType: z.literal("string"), result: sampleValue }),
    ]),
  }),
  z.object({ status: z.literal("error"), errorType: z.string(), error: z.string() }),
]);

export interface InstantSample {
  labels: Record<string, string>;
  /** Seconds since epoch, as Prometheus reports it. */
  at: number;
  value: number;
}

export interface RangeSeries {
  labels: Record<string, string>;
  points: { at: number; value: number }[];
}

/**
 * The PromQL confscale reads per worker, in one place. `window` is the rate window (at least four scrape intervals).
 * CPU and memory mean what the seed scaler's queries mean (REFERENCE §4) so figures stay comparable, with two
 * changes: `rate` instead of `irate` smooths single scrapes, which sustained thresholds would otherwise chase, and
 * CPU is idle time over all time rather than idle time per second, which a rate's extrapolation would skew.
 */
export const workerQueries = {
  cpu: (window: string) =>
    `1 - sum by (instance) (rate(node_cpu_seconds_total{mode="idle"}[${window}])) / sum by (instance) (rate(node_cpu_seconds_total[${window}]))`,
  memory: () => `1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`,
  networkBytesPerSecond: (window: string) =>
    `sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"}[${window}])) + sum by (instance) (rate(node_network_transmit_bytes_total{device!="lo"}[${window}]))`,
} as const;

export interface WorkerMetrics {
  cpu?: number;
  memory?: number;
  networkBytesPerSecond?: number;
}

export interface PrometheusClientOptions {
  baseUrl: string;
  timeoutMs?: number;
  /** Rate window for CPU and network; default 2m (scrape interval 15 s or less). */
  rateWindow?: string;
}

/** Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`); every answer is validated. */
export class PrometheusClient {
  private readonly timeoutMs: number;
  private readonly rateWindow: string;

  constructor(private readonly options: PrometheusClientOptions) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.rateWindow = options.rateWindow ?? "2m";
  }

  async query(promql: string, atSeconds?: number): Promise<InstantSample[]> {
    const data = await this.call("query", { query: promql, ...(atSeconds === undefined ? {} : { time: String(atSeconds) }) });
    if (data.resultType === "vector")
      return data.result.map((row) => ({ labels: row.metric, at: row.value[0], value: Number(row.value[1]) }));
    if (data.resultType === "scalar") return [{ labels: {}, at: data.result[0], value: Number(data.result[1]) }];
    throw new SignalError(`expected a vector, got a ${data.resultType}`, "prometheus", this.endpoint("query"));
  }

  async queryRange(promql: string, startSeconds: number, endSeconds: number, stepSeconds: number): Promise<RangeSeries[]> {
    const data = await this.call("query_range", {
      query: promql,
      start: String(startSeconds),
      end: String(endSeconds),
      step: String(stepSeconds),
    });
    if (data.resultType !== "matrix")
      throw new SignalError(`expected a matrix, got a ${data.resultType}`, "prometheus", this.endpoint("query_range"));
    return data.result.map((row) => ({ labels: row.metric, points: row.values.map(([at, value]) => ({ at, value: Number(value) })) }));
  }

  /** CPU and memory (fractions 0..1) and network bytes/s per `instance` label, in three queries run together. */
  async workerMetrics(): Promise<Map<string, WorkerMetrics>> {
    const [cpu, memory, network] = await Promise.all([
      this.query(workerQueries.cpu(this.rateWindow)),
      this.query(workerQueries.memory()),
      this.query(workerQueries.networkBytesPerSecond(this.rateWindow)),
    ]);
    const byInstance = new Map<string, WorkerMetrics>();
    const put = (samples: InstantSample[], key: keyof WorkerMetrics) => {
      for (const sample of samples) {
        const instance = sample.labels.instance;
        if (instance === undefined || !Number.isFinite(sample.value)) continue;
        byInstance.set(instance, { ...byInstance.get(instance), [key]: sample.value });
      }
    };
    put(cpu, "cpu");
    put(memory, "memory");
    put(network, "networkBytesPerSecond");
    return byInstance;
  }

  private endpoint(path: string): string {
    return safeUrl(new URL(`api/v1/${path}`, this.base()));
  }

  private base(): string {
    return this.options.baseUrl.endsWith("/") ? this.options.baseUrl : `${this.options.baseUrl}/`;
  }

  private async call(path: "query" | "query_range", params: Record<string, string>) {
    const url = new URL(`api/v1/${path}`, this.base());
    url.search = new URLSearchParams(params).toString();
    // Prometheus answers 400/422 with a JSON error body worth reporting.
    const { status, body } = await requestText({ source: "prometheus", url, timeoutMs: this.timeoutMs, acceptStatus: [400, 422, 503] });
    const parsed = queryResponse.safeParse(parseJson(body, "prometheus", url, status));
    if (!parsed.success)
      throw new SignalError(`unexpected answer: ${parsed.error.message.slice(0, 300)}`, "prometheus", safeUrl(url), status);
    if (parsed.data.status === "error")
      throw new SignalError(`${parsed.data.errorType}: ${parsed.data.error}`, "prometheus", safeUrl(url), status);
    return parsed.data.data;
  }
}
