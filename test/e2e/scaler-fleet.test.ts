import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emulatedFleetAddresses, emulatedFleetSecrets, emulatedFleetTemplate } from "../harness/fleetRig.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { PrometheusServer } from "../harness/prometheus.js";
import { useEmulatedParts } from "../harness/emulatedParts.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));
const OPERATOR_TOKEN = "operator-token-".padEnd(40, "o");
const VIEWER_TOKEN = "viewer-token-".padEnd(40, "v");

/** The operator's CLI, run as an operator would run it; resolves with its exit code and output. */
function confscale(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(repo, "scaler", "cli.ts"), ...args],
      { cwd: repo, env: { PATH: process.env.PATH ?? "", ...env } },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }),
    );
  });
}

describe("the scaler's entry point drives its fleet from its settings (real Redis, Prometheus, CLI, emulator)", () => {
  const parts = useEmulatedParts({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 } });
  let prometheus: PrometheusServer;
  let port: number;
  let configFile: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    port = await freeLoopbackPort();
    prometheus = await PrometheusServer.start([
      { job_name: "workers", http_sd_configs: [{ url: `http://127.0.0.1:${port}/fleets/bbb/targets`, refresh_interval: "1s" }] },
    ]);
    configFile = join(parts.sandbox.dir, "scaler.yaml");
    await writeFile(
      configFile,
      stringify({
        listen: { host: "127.0.0.1", port },
        redis: { url: parts.redis.url },
        sidecar: { keyBaseUrl: parts.emulator.keyBaseUrl },
        fleet: {
          template: emulatedFleetTemplate(parts.emulator, "e2e", "bbb"),
          image: "ubuntu:22.04",
          policy: {
            min: 1,
            max: 2,
            baseline: 1,
            defaultSize: { cores: 2, ramGb: 8 },
            maxSize: { cores: 4, ramGb: 16 },
            // Far from UTC, so a time shown in UTC cannot pass for the fleet's own.
            timeZone: "Pacific/Auckland",
          },
          intervalSeconds: 1,
          workDir: join(parts.sandbox.dir, "fleet"),
          ...emulatedFleetAddresses(parts.emulator),
          prometheusUrl: prometheus.url,
        },
      }),
    );
    env = {
      ...parts.sandbox.env,
      SCALER_CONFIG: configFile,
      LOG_LEVEL: "warn",
      ...emulatedFleetSecrets(parts.emulator),
      SCALER_API_TOKENS: `ops:operator:${OPERATOR_TOKEN},watch:viewer:${VIEWER_TOKEN}`,
    };
  });

  afterAll(async () => {
    await prometheus?.stop();
  });

  function startScaler(environment: Record<string, string>) {
    // Node itself with tsx's loader, as in the container: signals reach the scaler without a wrapper process.
    const child = spawn(process.execPath, ["--import", "tsx", join(repo, "scaler", "main.ts")], {
      cwd: repo,
      env: environment,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    return { child, output: () => output, exited: once(child, "exit") as Promise<[number | null, string | null]> };
  }

  it("refuses to start without the fleet's secrets, naming each missing variable", async () => {
    const { PULUMI_CONFIG_PASSPHRASE: _passphrase, CONFSCALE_BBB_SECRET: _bbb, ...incomplete } = env;
    const scaler = startScaler(incomplete);
    const [code] = await scaler.exited;
    expect(code).toBe(1);
    expect(scaler.output()).toContain("PULUMI_CONFIG_PASSPHRASE, CONFSCALE_BBB_SECRET");
  });

  it(
    "brings the fleet to its baseline through the engine, serves its status, answers the operator's CLI, and stops cleanly on SIGTERM",
    { timeout: 420_000 },
    async () => {
      const scaler = startScaler(env);
      try {
        const deadline = Date.now() + 240_000;
        let status: { servers: { name: string; phase: string }[] } | undefined;
        while (status?.servers.some((server) => server.phase === "active") !== true) {
          if (Date.now() > deadline || scaler.child.exitCode !== null) throw new Error(`no active server:\n${scaler.output()}`);
          const response = await fetch(`http://127.0.0.1:${port}/fleets/bbb`).catch(() => undefined);
          status = response?.ok === true ? ((await response.json()) as typeof status) : undefined;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        expect(status.servers).toEqual([expect.objectContaining({ name: "bbb-1", phase: "active", cores: 2, ramGb: 8 })]);
        const servers = [...parts.emulator.cloud.servers.values()].map((server) => parts.emulator.serverView(server));
        expect(servers.map((server) => [server.name, server.vmState])).toEqual([["bbb-1", "RUNNING"]]);
        const targets = (await (await fetch(`http://127.0.0.1:${port}/fleets/bbb/targets`)).json()) as { labels: Record<string, string> }[];
        expect(targets[0]?.labels).toMatchObject({ server: "bbb-1", __metrics_path__: `/servers/${servers[0]?.id}/metrics` });

        const operator = { CONFSCALE_URL: `http://127.0.0.1:${port}`, CONFSCALE_TOKEN: OPERATOR_TOKEN };
        const statusRun = await confscale(["status", "bbb"], operator);
        expect(statusRun, statusRun.stderr).toMatchObject({ code: 0 });
        expect(statusRun.stdout).toMatch(/^bbb-1\s+2 cores \/ 8 GB\s+running\s+active$/m);
        // --json prints the scaler's answer for scripts: one fleet status per fleet, the same servers.
        const jsonRun = await confscale(["--json", "status", "bbb"], operator);
        expect(jsonRun, jsonRun.stderr).toMatchObject({ code: 0 });
        const [jsonStatus] = JSON.parse(jsonRun.stdout) as { fleet: string; servers: { name: string; phase: string }[] }[];
        expect(jsonStatus).toMatchObject({ fleet: "bbb" });
        expect(jsonStatus?.servers).toEqual(expect.arrayContaining([expect.objectContaining({ name: "bbb-1", phase: "active" })]));

        const refused = await confscale(["servers", "cordon", "bbb-1"], { ...operator, CONFSCALE_TOKEN: VIEWER_TOKEN });
        expect(refused.code).toBe(1);
        expect(refused.stderr).toContain("answered 403: requires the operator role");

        // bbb-1's registration: while it is held, the policy may already be replacing it with another server.
        const scaleliteState = () =>
          [...parts.emulator.scalelite.servers.values()]
            .filter((entry) => entry.url.includes(`/servers/${servers[0]?.id}/`))
            .map((entry) => entry.state);
        const cordoned = await confscale(["servers", "cordon", "bbb-1"], operator);
        expect(cordoned, cordoned.stderr).toMatchObject({ code: 0, stdout: "bbb-1: cordoned, now held\n" });
        expect(scaleliteState()).toEqual(["cordoned"]);
        const enabled = await confscale(["servers", "enable", "bbb-1"], operator);
        expect(enabled, enabled.stderr).toMatchObject({ code: 0, stdout: "bbb-1: enabled, now active\n" });
        expect(scaleliteState()).toEqual(["enabled"]);

        const unconfirmed = await confscale(["servers", "panic", "bbb-1"], operator);
        expect(unconfirmed.code).toBe(1);
        expect(unconfirmed.stderr).toContain("add --yes to confirm");
        const unknown = await confscale(["servers", "cordon", "bbb-9"], operator);
        expect(unknown.code).toBe(1);
        expect(unknown.stderr).toContain("answered 404: fleet bbb has no server bbb-9");

        const preview = await confscale(["fleet", "preview"], operator);
        expect(preview, preview.stderr).toMatchObject({ code: 0, stdout: "fleet bbb: no changes\n" });
        const up = await confscale(["fleet", "up"], operator);
        expect(up, up.stderr).toMatchObject({ code: 0 });
        expect(up.stdout).toMatch(/^last period .*: \d+ decisions?/m);
        // The period's time reads in the fleet's zone, as its windows do.
        const shown = /^last period (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) Pacific\/Auckland:/m.exec(up.stdout)?.[1];
        expect(shown, up.stdout).toBeDefined();
        const aucklandNow = new Intl.DateTimeFormat("sv-SE", { timeZone: "Pacific/Auckland", dateStyle: "short", timeStyle: "medium" });
        const drift = Date.parse(`${aucklandNow.format(new Date())}Z`) - Date.parse(`${shown}Z`);
        expect(drift).toBeGreaterThanOrEqual(0);
        expect(drift).toBeLessThan(5 * 60_000);

        // Each operator action is in the fleet's audit trail with who did it.
        const audit = (await (
          await fetch(`http://127.0.0.1:${port}/api/v1/groups/bbb/audit?limit=1000`, {
            headers: { authorization: `Bearer ${VIEWER_TOKEN}` },
          })
        ).json()) as { entries: { kind: string; actor: string }[] };
        const operatorEntries = audit.entries.filter((entry) => entry.kind.startsWith("operator."));
        expect(operatorEntries.map((entry) => [entry.kind, entry.actor]).sort()).toEqual([
          ["operator.cordon", "ops"],
          ["operator.enable", "ops"],
        ]);
      } finally {
        scaler.child.kill("SIGTERM");
      }
      const [code, signal] = await scaler.exited;
      expect({ code, signal }, scaler.output()).toEqual({ code: 0, signal: null });
    },
  );
});
