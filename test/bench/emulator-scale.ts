/**
 * How far one emulator process scales: 1,000 servers created through the unmodified IONOS SDK, the
 * school-day trace's peak placed on them through Scalelite, every node-exporter scraped (by a plain
 * client and by a real Prometheus), with the memory it takes. Prints figures; asserts nothing.
 *
 *   npm run bench:emulator [-- --servers 1000]
 */
import { readFile } from "node:fs/promises";
import { Configuration, ServersApi } from "@ionos-cloud/sdk-nodejs";
import { z } from "zod";
import { parseCommandLine, UsageError } from "../../scaler/commandLine.js";
import { Emulator } from "../emulator/emulator.js";
import { parseTrace } from "../emulator/load-driver.js";
import { PrometheusServer } from "../harness/prometheus.js";

const values = parseCommandLine(
  {
    name: "npm run bench:emulator",
    usage: `usage: npm run bench:emulator [-- --servers 1000] [--trace FILE]
  Memory and scrape time of one emulator process holding many servers.
  --servers  emulated servers (1000)
  --trace    meetings to place, a CSV like test/traces/school-day.csv (the default)`,
    flags: {
      servers: { type: "string", default: "1000" },
      trace: { type: "string", default: new URL("../traces/school-day.csv", import.meta.url).pathname },
    },
  },
  ({ values }) => {
    const servers = Number(values.servers);
    if (!Number.isInteger(servers) || servers <= 0)
      throw new UsageError(`--servers: expected a positive integer, got ${JSON.stringify(values.servers)}`);
    return { servers, trace: values.trace };
  },
);
const serverCount = values.servers;

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

async function inBatches<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

global.gc?.();
const baseline = process.memoryUsage();
const emulator = await Emulator.start({ timings: { requestQueuedMs: 0, requestRunningMs: 0, bootMs: 0 } });
const config = new Configuration({ apiKey: emulator.credentials.token, basePath: emulator.cloudApiUrl });
config.setMaxWaitTime(0);
const servers = new ServersApi(config);
const datacenterId = emulator.defaultDatacenterId!;

let started = performance.now();
await inBatches(
  Array.from({ length: serverCount }, (_, index) => index),
  20,
  async (index) => {
    await servers.datacentersServersPost({
      datacenterId,
      server: {
        properties: { name: `bbb-${index}`, cores: 4, ram: 8192 },
        entities: {
          volumes: { items: [{ properties: { name: `bbb-${index}-boot`, size: 40 } }] },
          nics: { items: [{ properties: { lan: 1, dhcp: true } }] },
        },
      },
    });
  },
);
const createSeconds = (performance.now() - started) / 1000;
await fetch(`${emulator.url}/_control/state`);

started = performance.now();
const listed = await servers.datacentersServersGet({ datacenterId, depth: 2 });
const listMs = performance.now() - started;

for (const server of emulator.cloud.servers.values()) {
  emulator.scalelite.servers.get(emulator.scalelite.add(emulator.bbbUrl(server.id), emulator.cloud.bbbSecret, 1, "").id)!.state = "enabled";
}
emulator.scalelite.poll();
// The trace's meetings running at its peak (08:55) are all placed at once.
const peakSecond = 8 * 3600 + 55 * 60;
const running = parseTrace(await readFile(values.trace, "utf8")).filter(
  (meeting) => meeting.startSecond <= peakSecond && meeting.startSecond + meeting.durationSeconds > peakSecond,
);
for (const meeting of running)
  emulator.scalelite.placeMeeting({
    participants: meeting.participants,
    videos: meeting.videos,
    listenOnly: meeting.listenOnly,
    durationMs: 3_600_000,
  });
const participants = running.reduce((sum, meeting) => sum + meeting.participants, 0);

global.gc?.();
const loaded = process.memoryUsage();

const ids = [...emulator.cloud.servers.keys()];
const latencies: number[] = [];
let bytes = 0;
started = performance.now();
await inBatches(ids, 50, async (id) => {
  const begin = performance.now();
  const response = await fetch(`${emulator.url}${emulator.metricsPath(id)}`);
  bytes += (await response.text()).length;
  latencies.push(performance.now() - begin);
});
const scrapeAllMs = performance.now() - started;
latencies.sort((a, b) => a - b);

const prometheus = await PrometheusServer.start([
  {
    job_name: "node",
    scrape_interval: "5s",
    http_sd_configs: [{ url: `${emulator.url}/_control/prometheus/targets`, refresh_interval: "5s" }],
  },
]);
const vector = z.object({ data: z.object({ result: z.array(z.object({ value: z.tuple([z.number(), z.string()]) })) }) });
const scalar = async (promql: string) =>
  Number(
    vector.parse(await (await fetch(`${prometheus.url}/api/v1/query?${new URLSearchParams({ query: promql })}`)).json()).data.result[0]
      ?.value[1] ?? Number.NaN,
  );
const deadline = Date.now() + 120_000;
let targetsUp = 0;
while (Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  targetsUp = await scalar("count(up == 1)");
  if (targetsUp >= serverCount && (await scalar("min(count_over_time(up[30s]))")) >= 3) break;
}
const prometheusScrape = await scalar("avg(scrape_duration_seconds)");
const prometheusScrapeMax = await scalar("max(max_over_time(scrape_duration_seconds[30s]))");
await prometheus.stop();
await emulator.stop();

console.log(`emulator scale benchmark: ${serverCount} servers in one process`);
console.log(
  `  create through the SDK (20 in flight):  ${createSeconds.toFixed(1)} s, ${(serverCount / createSeconds).toFixed(0)} creates/s`,
);
console.log(`  list servers depth=2:                   ${listMs.toFixed(0)} ms for ${listed.data.items?.length} servers`);
console.log(`  meetings placed (trace peak 08:55):     ${running.length} meetings, ${participants} participants`);
console.log(
  `  memory: rss ${megabytes(loaded.rss)} (+${megabytes(loaded.rss - baseline.rss)}), heap ${megabytes(loaded.heapUsed)} (+${megabytes(loaded.heapUsed - baseline.heapUsed)}), ${((loaded.heapUsed - baseline.heapUsed) / serverCount / 1024).toFixed(1)} KB heap per server`,
);
console.log(
  `  scrape all ${ids.length} /metrics (50 in flight): ${scrapeAllMs.toFixed(0)} ms, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms, ${(bytes / ids.length / 1024).toFixed(1)} KB each`,
);
console.log(
  `  real prometheus, 5 s interval:          ${targetsUp} targets up, avg scrape ${(prometheusScrape * 1000).toFixed(1)} ms, max ${(prometheusScrapeMax * 1000).toFixed(1)} ms`,
);
