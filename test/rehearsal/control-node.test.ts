import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseEnvironmentConfig, type EnvironmentConfig } from "../../infra/config.js";
import { cloudCredentialsFrom } from "../../infra/clouds/index.js";
import type { Placement } from "../../infra/clouds/types.js";
import { renderControlNodeScalerSettings } from "../../infra/controlNode.js";
import { renderControlNodeSecretFiles, renderControlNodeUserData } from "../../infra/templates.js";
import { Emulator } from "../emulator/emulator.js";
import { configMapFromStackFile } from "../harness/stackFile.js";
import { ControlNode, type ControlNodeDelivery } from "./control-node.js";
import { Lab, LabError, waitFor, type Machine } from "./lab.js";

const ENV = "local";
const STACK_FILE = new URL("../../stacks/Pulumi.local.yaml", import.meta.url).pathname;

/** The local stack's config as `pulumi up` hands it to the program, with secrets an operator would set. */
function localStack(secrets: { scaleliteSecret: string; grafanaAdminPassword: string; nodeExporterPassword: string }): EnvironmentConfig {
  const { raw, secretKeys } = configMapFromStackFile(STACK_FILE);
  for (const [key, value] of Object.entries(secrets)) raw[`confscale:${key}`] = value;
  return parseEnvironmentConfig(ENV, raw, secretKeys);
}

const Targets = z.object({
  data: z.object({
    activeTargets: z.array(z.object({ labels: z.record(z.string(), z.string()), health: z.string(), lastError: z.string() })),
  }),
});

/**
 * The control node of the local environment runs its rendered compose project in the lab: the scaler (a Node process
 * of the machine, its environment from the env file and the compose service's `environment:` as compose-go reads
 * them, its settings from the delivered scaler.yaml), Redis and Prometheus with the compose commands and the rendered
 * prometheus.yml, and the emulated Scalelite at scalelite-api:3000. The cloud API emulator stays outside.
 */
describe("the control node runs what its compose file says (rehearsal lab)", () => {
  let emulator: Emulator;
  let lab: Lab;
  let control: Machine;
  let node: ControlNode;
  let config: EnvironmentConfig;
  let delivery: ControlNodeDelivery;
  let userData: string;
  const secrets = {
    scaleliteSecret: randomBytes(32).toString("hex"),
    grafanaAdminPassword: randomBytes(12).toString("base64url"),
    nodeExporterPassword: randomBytes(18).toString("base64url"),
  };

  async function curl(url: string): Promise<{ status: string; body: string }> {
    const { stdout } = await control.exec("curl", ["-sS", "-w", "\n%{http_code}", url]);
    const at = stdout.lastIndexOf("\n");
    return { status: stdout.slice(at + 1), body: stdout.slice(0, at) };
  }

  beforeAll(async () => {
    const usable = await Lab.available();
    if (!usable.ok) throw new Error(usable.reason);
    emulator = await Emulator.start({
      scaleliteSecret: secrets.scaleliteSecret,
      timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 },
    });
    lab = await Lab.start();
    // The cloud's API is on the internet: the control node reaches it at the lab's gateway.
    const cloudApi = await lab.expose({ port: Number(new URL(emulator.url).port) });
    config = localStack(secrets);
    control = await lab.machine("control", { address: "198.18.0.2", hostnames: [config.domain] });
    const placement: Placement = {
      cloud: "ionos",
      region: config.region,
      ionos: { datacenterId: emulator.defaultDatacenterId ?? "", lanId: 1, endpoint: `${cloudApi.url}/cloudapi/v6`, pollIntervalMs: 100 },
    };
    userData = renderControlNodeUserData({ env: ENV, domain: config.domain, fleetStack: `${ENV}-fleet` });
    delivery = {
      secretFiles: renderControlNodeSecretFiles({
        ...secrets,
        fleetBackendUrl: "file:///var/lib/confscale/state",
        fleetPassphrase: randomBytes(16).toString("hex"),
        cloudCredentials: cloudCredentialsFrom({
          IONOS_USERNAME: emulator.credentials.username,
          IONOS_PASSWORD: emulator.credentials.password,
        }),
      }),
      scalerSettings: renderControlNodeScalerSettings(ENV, config, control.address, placement),
    };
    // The file:// backend of the fleet stack lives on the fleet-state volume.
    await control.mkdir("/var/lib/confscale/state");
    const certificate = await lab.issueCertificate({ dns: [config.domain] });
    node = await ControlNode.boot(control, { userData, delivery, scalelitePort: Number(new URL(emulator.url).port), certificate });
  }, 120_000);

  afterAll(async () => {
    await lab?.stop();
    await emulator?.stop();
  });

  it("starts the scaler with the compose environment and scaler.yaml: ready on Redis by its compose name, keys under the env's prefix", async () => {
    expect((await curl("http://scaler:8080/readyz")).status).toBe("200");
    const fleet = await curl("http://scaler:8080/fleets/bbb");
    expect(fleet.status).toBe("200");
    // SCALER_REDIS_URL names database 1 and SCALER_KEY_PREFIX the environment: the scaler's keys are there.
    const keys = await waitFor("the scaler's keys in Redis", async () => {
      const { stdout } = await control.exec("redis-cli", ["-h", "redis", "-n", "1", "--scan"]);
      const found = stdout.split("\n").filter((key) => key !== "");
      return found.length > 0 ? found : undefined;
    });
    for (const key of keys) expect(key).toMatch(/^confscale:local:/);
    const { stdout: inDbZero } = await control.exec("redis-cli", ["-h", "redis", "-n", "0", "--scan"]);
    expect(inDbZero.trim()).toBe("");
  });

  it("serves the scaler behind Caddy with the rendered Caddyfile: the public key and sidecar routes answer, the operations routes do not", async () => {
    const sidecar = await curl(`https://${config.domain}/scaler/dist/confscale-sidecar.mjs`);
    expect(sidecar.status).toBe("200");
    // Check-ins reach the check-in workers' port: without a token they are refused there, not by Caddy.
    const checkIn = await control.exec("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "-X",
      "POST",
      `https://${config.domain}/scaler/sidecar/poll`,
    ]);
    expect(checkIn.stdout).toBe("401");
    expect((await curl(`https://${config.domain}/scaler/fleets/bbb/targets`)).status).toBe("404");
  });

  it("runs Prometheus from the rendered prometheus.yml, which scrapes the scaler by its compose service name", async () => {
    const scaler = await waitFor(
      "Prometheus to scrape the scaler",
      async () => {
        const { body } = await curl("http://prometheus:9090/api/v1/targets?state=active");
        const target = Targets.parse(JSON.parse(body)).data.activeTargets.find((entry) => entry.labels.job === "confscale-scaler");
        return target?.health === "up" ? target : undefined;
      },
      60_000,
    );
    expect(scaler.labels.instance).toBe("scaler:8080");
  });

  it("brings the empty fleet to its baseline through the emulated cloud's API, outside the lab", async () => {
    const min = config.workers.min;
    const servers = await waitFor(
      "the scaler's first fleet up",
      async () => {
        const named = [...emulator.cloud.servers.values()].filter((server) => server.labels.get("confscale:fleet") === "bbb");
        return named.length >= Math.max(min, config.workers.baseline) ? named : undefined;
      },
      110_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nscaler: ${node.service("scaler").process.stderr.slice(-3000)}`);
    });
    expect(servers.map((server) => server.name).sort()).toEqual(
      Array.from({ length: servers.length }, (_, index) => `bbb-${index + 1}`).sort(),
    );
    for (const server of servers) expect(server.labels.get("confscale:env")).toBe(ENV);
  }, 120_000);

  it("fails to start the scaler when the compose file renames one of its variables (a deliberately broken variant)", async () => {
    const broken = await lab.machine("control-broken", { address: "198.18.0.3" });
    const renamed = userData.replace("SCALER_REDIS_URL:", "SCALER_REDIS_ADDRESS:");
    expect(renamed).not.toBe(userData);
    const boot = ControlNode.boot(broken, {
      userData: renamed,
      delivery,
      scalelitePort: Number(new URL(emulator.url).port),
      only: ["scaler"],
    });
    await expect(boot).rejects.toThrow(LabError);
    await expect(boot).rejects.toThrow(/compose service scaler exited[\s\S]*redis\.url: required/);
  }, 60_000);
});
