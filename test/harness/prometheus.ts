import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { freeLoopbackPort } from "./ports.js";
import { requireProgram, startUntilReady, type ManagedProcess } from "./process.js";

export interface ScrapeJob {
  job_name: string;
  scrape_interval?: string;
  metrics_path?: string;
  static_configs?: { targets: string[]; labels?: Record<string, string> }[];
  http_sd_configs?: { url: string; refresh_interval?: string }[];
  [key: string]: unknown;
}

/** A real Prometheus on a free loopback port with the given scrape jobs, private to one test file. */
export class PrometheusServer {
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly process: ManagedProcess,
  ) {}

  /** `port` brings a stopped Prometheus back at the address its clients know. */
  static async start(scrapeConfigs: ScrapeJob[], options: { scrapeInterval?: string; port?: number } = {}): Promise<PrometheusServer> {
    const binary = requireProgram("prometheus", "prometheus");
    const dir = await mkdtemp(join(tmpdir(), "confscale-prometheus-"));
    const port = options.port ?? (await freeLoopbackPort());
    const config = {
      global: { scrape_interval: options.scrapeInterval ?? "1s", evaluation_interval: options.scrapeInterval ?? "1s" },
      scrape_configs: scrapeConfigs,
    };
    const configFile = join(dir, "prometheus.yml");
    await writeFile(configFile, stringify(config));
    const process = await startUntilReady(
      binary,
      [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=info",
      ],
      /Server is ready to receive web requests/,
      { timeoutMs: 60_000 },
    );
    return new PrometheusServer(port, dir, process);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
