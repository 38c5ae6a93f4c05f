import * as pulumi from "@pulumi/pulumi";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { environmentConfigSchema, type EnvironmentConfig } from "../../infra/config.js";
import { declareEnvironment } from "../../infra/environment.js";
import { defineFleet, type FleetSpec } from "../../infra/fleet.js";
import { workerCredentials } from "../../infra/workerCredentials.js";
import { loadSettings } from "../../scaler/settings.js";
import { controlNodeProjectFiles, nodeExporterPasswordHash, renderWorkerUserData } from "../../infra/templates.js";
import { useRecordingMocks } from "./pulumiMocks.js";

const CONTROL_IP = "198.51.100.10";

const declared = useRecordingMocks({ stack: "prod", dryRun: true, ipv4: CONTROL_IP });

const SECRETS = {
  scaleliteSecret: "s".repeat(40),
  grafanaAdminPassword: "grafana-admin-pw-1",
  nodeExporterPassword: "node-exporter-pw-1",
  fleetBackendUrl: "s3://confscale-state?region=eu",
  fleetPassphrase: "fleet-passphrase-123",
};

/** A worker sidecar key as infra/workerCredentials.ts derives it. */
const SIDECAR_KEY = (({ keyId, signingKeyPem }) => ({ sidecarKeyId: keyId, sidecarSigningKey: signingKeyPem }))(
  workerCredentials("m".repeat(40), "bbb", "bbb-7"),
);

function configFor(cloud: EnvironmentConfig["cloud"]): EnvironmentConfig {
  return environmentConfigSchema.parse({
    cloud,
    region: cloud === "ionos" ? "de/fra" : cloud === "digitalocean" ? "fra1" : "eu-frankfurt-1",
    domain: "bbb.example.org",
    adminCidrs: ["203.0.113.0/24"],
    sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"],
    controlNode: { cores: 4, ramGb: 8 },
    ...SECRETS,
    deployScaler: true,
    workers: { min: 1, max: 4, baseline: 1, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
    ...(cloud === "ionos" ? { ionos: { image: "ubuntu:22.04", endpoint: "http://127.0.0.1:9/cloudapi/v6" } } : {}),
    ...(cloud === "oci"
      ? {
          oci: {
            compartmentId: "ocid1.compartment.oc1..aaaa",
            availabilityDomain: "Uocm:EU-FRANKFURT-1-AD-1",
            imageId: "ocid1.image.oc1..bbbb",
            workerImageId: "ocid1.image.oc1..cccc",
          },
        }
      : {}),
  });
}

function value<T>(output: pulumi.Output<T> | T): Promise<T> {
  return pulumi.Output.isInstance(output)
    ? new Promise((resolve) => (output as pulumi.Output<T>).apply(resolve))
    : Promise.resolve(output as T);
}

/** Declares an environment and waits until every resource the mocks saw has settled. */
async function declare(env: string, cloud: EnvironmentConfig["cloud"]) {
  const outputs = declareEnvironment(env, configFor(cloud), { repositoryRoot: process.cwd() });
  const address = await value(outputs.controlNodeAddress);
  await value(outputs.workerFirewallRules);
  await value(outputs.workerPlacement);
  // resources declared inside applies register on the next turns
  await new Promise((resolve) => setImmediate(resolve));
  return { outputs, address, mine: () => declared.filter((resource) => resource.name.includes(env)) };
}

function expectNoSecretText(text: string): void {
  for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
}

describe("environment on DigitalOcean (mocks)", () => {
  it("declares VPC, tagged droplet of the right size, and both firewalls with exactly the allowed sources", async () => {
    const { outputs, address, mine } = await declare("do1", "digitalocean");
    const resources = mine();
    expect(resources.map((resource) => resource.type)).toEqual(
      expect.arrayContaining([
        "digitalocean:index/vpc:Vpc",
        "digitalocean:index/droplet:Droplet",
        "digitalocean:index/firewall:Firewall",
        "digitalocean:index/tag:Tag",
      ]),
    );
    const droplet = resources.find((resource) => resource.type === "digitalocean:index/droplet:Droplet");
    expect(droplet?.inputs).toMatchObject({ size: "s-4vcpu-8gb", region: "fra1", image: "ubuntu-22-04-x64" });
    expect(droplet?.inputs.tags).toEqual(expect.arrayContaining(["confscale:env:do1", "confscale:role:control", "confscale-do1-control"]));
    expectNoSecretText(String(droplet?.inputs.userData));

    type Inbound = { protocol: string; portRange: string; sourceAddresses: string[] };
    const firewall = (name: string) =>
      resources.find((resource) => resource.type === "digitalocean:index/firewall:Firewall" && resource.name === name)?.inputs as {
        tags: string[];
        inboundRules: Inbound[];
      };
    const control = firewall("confscale-do1-control");
    expect(control.tags).toEqual(["confscale-do1-control"]);
    expect(control.inboundRules.map((rule) => `${rule.protocol}/${rule.portRange} ${rule.sourceAddresses.join(",")}`).sort()).toEqual([
      "tcp/22 203.0.113.0/24",
      "tcp/443 0.0.0.0/0,::/0",
      "tcp/80 0.0.0.0/0,::/0",
    ]);
    const worker = firewall("confscale-do1-worker");
    expect(worker.tags).toEqual(["confscale-do1-worker"]);
    expect(worker.inboundRules.map((rule) => `${rule.protocol}/${rule.portRange} ${rule.sourceAddresses.join(",")}`).sort()).toEqual([
      "tcp/22 203.0.113.0/24",
      "tcp/443 0.0.0.0/0,::/0",
      "tcp/80 0.0.0.0/0,::/0",
      `tcp/9100 ${CONTROL_IP}/32`,
      "udp/16384-32768 0.0.0.0/0,::/0",
    ]);
    expect(address).toBe(CONTROL_IP);
    expect(outputs.fleetStack).toBe("do1-fleet");
    expect(outputs.scaleliteUrl).toBe("https://bbb.example.org/bigbluebutton/api");
  });
});

describe("a Jitsi-only environment on DigitalOcean (mocks)", () => {
  it("runs no Scalelite: no Scalelite or PostgreSQL secret files, no scaleliteUrl, and a worker firewall without BBB ports", async () => {
    const env = "jonly1";
    const { workers: _workers, ...rest } = configFor("digitalocean");
    const config = environmentConfigSchema.parse({
      ...rest,
      jitsi: {
        signaling: { xmppDomain: "meet.example.org", xmppHost: "meet.example.org", websocketProxyCidrs: ["203.0.113.7/32"] },
        groups: [
          {
            name: "bridges",
            type: "JVB",
            size: { cores: 4, ramGb: 8 },
            scaling: { minDesired: 1, maxDesired: 4, desiredCount: 1, scaleUpThreshold: 0.7, scaleDownThreshold: 0.3 },
          },
        ],
      },
      jitsiJvbPassword: "jvb-xmpp-password",
    });
    const outputs = declareEnvironment(env, config, { repositoryRoot: process.cwd() });
    await value(outputs.controlNodeAddress);
    const rules = await value(outputs.workerFirewallRules);
    await new Promise((resolve) => setImmediate(resolve));
    expect(outputs.scaleliteUrl).toBeUndefined();
    const names = declared.filter((resource) => resource.name.includes(env)).map((resource) => resource.name);
    expect(names).toEqual(expect.arrayContaining([`${env}-control-secrets-grafana`, `${env}-control-secrets-nodeExporterPassword`]));
    expect(names.filter((name) => /secrets-(scalelite|postgres)/.test(name))).toEqual([]);
    expect(rules.map((rule) => `${rule.protocol}/${rule.fromPort}`).sort()).toEqual([
      "tcp/22",
      "tcp/80",
      "tcp/9090",
      "tcp/9100",
      "udp/10000",
    ]);
    // The droplet's compose project runs no Scalelite and Prometheus discovers the group's bridges.
    const droplet = declared.find((resource) => resource.type === "digitalocean:index/droplet:Droplet" && resource.name.includes(env));
    const files = (parse(String(droplet?.inputs.userData)) as { write_files: { path: string; content: string }[] }).write_files;
    const compose = files.find((file) => file.path === "/opt/confscale/docker-compose.yml")?.content ?? "";
    expect(Object.keys((parse(compose) as { services: object }).services).sort()).toEqual([
      "caddy",
      "grafana",
      "prometheus",
      "redis",
      "scaler",
    ]);
    expect(files.find((file) => file.path === "/opt/confscale/prometheus.yml")?.content).toContain("/fleets/jitsi-bridges/targets");
  });
});

describe("environment on Oracle Cloud (mocks)", () => {
  it("declares VCN, subnet, NSGs with every rule, and a Flex instance with its shape, state and tags", async () => {
    const { mine } = await declare("oci1", "oci");
    const resources = mine();
    const instance = resources.find((resource) => resource.type === "oci:Core/instance:Instance");
    expect(instance?.inputs).toMatchObject({
      shape: "VM.Standard.E4.Flex",
      shapeConfig: { ocpus: 2, memoryInGbs: 8 },
      state: "RUNNING",
      freeformTags: { "confscale:env": "oci1", "confscale:role": "control" },
      sourceDetails: { sourceType: "image", sourceId: "ocid1.image.oc1..bbbb" },
    });
    const userData = Buffer.from(String((instance?.inputs.metadata as Record<string, string>).user_data), "base64").toString("utf8");
    expect(parse(userData)).toHaveProperty("write_files");
    expectNoSecretText(userData);
    expect(resources.map((resource) => resource.type)).toEqual(
      expect.arrayContaining([
        "oci:Core/vcn:Vcn",
        "oci:Core/subnet:Subnet",
        "oci:Core/internetGateway:InternetGateway",
        "oci:Core/networkSecurityGroup:NetworkSecurityGroup",
      ]),
    );

    const rules = resources
      .filter((resource) => resource.type === "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule")
      .map((resource) => {
        const options = (resource.inputs.tcpOptions ?? resource.inputs.udpOptions) as {
          destinationPortRange: { min: number; max: number };
        };
        const group = resource.name.startsWith("oci1-worker") ? "worker" : "control";
        return `${group} ${resource.inputs.protocol}/${options.destinationPortRange.min}-${options.destinationPortRange.max} ${resource.inputs.source}`;
      });
    expect(rules).toContain(`worker 6/9100-9100 ${CONTROL_IP}/32`);
    expect(rules).toContain("worker 17/16384-32768 0.0.0.0/0");
    // No TURN server runs on a worker: nothing serves 3478 or 7443.
    expect(rules.filter((rule) => / 6\/(3478|7443)-/.test(rule))).toEqual([]);
    expect(rules).toContain("worker 6/443-443 ::/0");
    expect(rules).toContain("control 6/443-443 0.0.0.0/0");
    expect(rules.filter((rule) => / 6\/(22|9100)-/.test(rule) && /(0\.0\.0\.0\/0|::\/0)$/.test(rule))).toEqual([]);
    expect(rules.filter((rule) => rule.includes("6/22-22")).sort()).toEqual([
      "control 6/22-22 203.0.113.0/24",
      "worker 6/22-22 203.0.113.0/24",
    ]);
  });
});

describe("environment on IONOS (mocks)", () => {
  it("declares a data center and a server through the dynamic provider with size, labels and NIC firewall rules", async () => {
    const { outputs, mine } = await declare("ionos1", "ionos");
    const resources = mine().filter((resource) => resource.type.startsWith("pulumi-nodejs:dynamic"));
    const datacenter = resources.find((resource) => resource.type === "pulumi-nodejs:dynamic/confscale:IonosDatacenter");
    expect(datacenter?.inputs).toMatchObject({
      name: "confscale-ionos1",
      location: "de/fra",
      connection: { endpoint: "http://127.0.0.1:9/cloudapi/v6" },
    });
    const server = resources.find((resource) => resource.type === "pulumi-nodejs:dynamic/confscale:IonosServer");
    expect(server?.inputs).toMatchObject({
      name: "ionos1-control",
      cores: 4,
      ramMb: 8192,
      vmState: "RUNNING",
      image: "ubuntu:22.04",
      labels: { "confscale:env": "ionos1", "confscale:role": "control" },
    });
    const rules = (server?.inputs.firewallRules as { protocol: string; fromPort: number; sourceCidrs: string[] }[]).map(
      (rule) => `${rule.protocol}/${rule.fromPort} ${rule.sourceCidrs.join(",")}`,
    );
    expect(rules.sort()).toEqual(["tcp/22 203.0.113.0/24", "tcp/443 0.0.0.0/0,::/0", "tcp/80 0.0.0.0/0,::/0"]);
    expectNoSecretText(String(server?.inputs.userData));
    expect(String(server?.inputs.__provider)).toContain("exports.handler");
    const workerRules = await value(outputs.workerFirewallRules);
    expect(workerRules.filter((rule) => rule.fromPort === 9100).flatMap((rule) => rule.sourceCidrs)).toEqual([`${CONTROL_IP}/32`]);
    expect(workerRules.filter((rule) => rule.fromPort === 22).flatMap((rule) => rule.sourceCidrs)).toEqual(["203.0.113.0/24"]);
  });
});

describe("secrets and rendered files", () => {
  it("delivers the secrets only over SSH as a secret .env, and deploys the scaler at the current commit", async () => {
    const { outputs, mine } = await declare("sec1", "digitalocean");
    const secretsStep = mine().find((resource) => resource.name === "sec1-control-secrets");
    // The engine sees the .env as a secret value (Pulumi's secret signature), so it is encrypted in state.
    const stdin = secretsStep?.inputs.stdin as { [key: string]: unknown; value: string };
    expect(stdin[pulumi.runtime.specialSigKey]).toBe(pulumi.runtime.specialSecretSig);
    expect(stdin.value).toContain(`LOADBALANCER_SECRET=${SECRETS.scaleliteSecret}`);
    expect(stdin.value).toContain(`PULUMI_CONFIG_PASSPHRASE=${SECRETS.fleetPassphrase}`);
    // The fleet's shared BBB secret is derived, so it needs no config of its own and is the same on every up.
    expect(stdin.value).toMatch(/^CONFSCALE_BBB_SECRET=[0-9a-f]{64}$/m);
    // The operator's API token is in .env for the scaler and a secret stack output for the operator's CLI.
    const token = await value(outputs.scalerApiToken);
    expect(stdin.value).toContain(`SCALER_API_TOKENS=operator:admin:${token}`);
    expect(await pulumi.isSecret(outputs.scalerApiToken)).toBe(true);
    const scaler = mine().find((resource) => resource.name === "sec1-control-scaler");
    // keyed by the commit (and the secret .env, which makes the trigger list itself secret)
    expect((scaler?.inputs.triggers as { value: unknown[] }).value[0]).toBe(outputs.scalerCommit);
    expect(outputs.scalerCommit).toMatch(/^[0-9a-f]{40}$/);
    for (const output of [outputs.controlNodeAddress, outputs.workerPlacement, outputs.workerFirewallRules] as pulumi.Output<unknown>[]) {
      expectNoSecretText(JSON.stringify(await value(output)));
    }
  });

  it("writes the scaler's fleet settings over SSH, which the scaler accepts together with the compose file's environment", async () => {
    const { address, mine } = await declare("set1", "ionos");
    const settingsStep = mine().find((resource) => resource.name === "set1-control-scaler-settings");
    const text = String(settingsStep?.inputs.stdin);
    expectNoSecretText(text);
    const compose = parse(
      controlNodeProjectFiles({ env: "set1", domain: "bbb.example.org", fleetStack: "set1-fleet" })["docker-compose.yml"] ?? "",
    ) as {
      services: { scaler: { environment: Record<string, string>; volumes: string[] } };
    };
    const scalerService = compose.services.scaler;
    const mountedAt = scalerService.environment.SCALER_CONFIG ?? "";
    expect(scalerService.volumes).toContain(`./scaler.yaml:${mountedAt}:ro`);
    const directory = await mkdtemp(join(tmpdir(), "confscale-settings-"));
    try {
      const file = join(directory, "scaler.yaml");
      await writeFile(file, text);
      const settings = await loadSettings({ ...scalerService.environment, SCALER_CONFIG: file });
      expect(settings.fleet?.template).toMatchObject({
        env: "set1",
        domain: "bbb.example.org",
        controlNodeIp: address,
        placement: { cloud: "ionos", region: "de/fra" },
      });
      // BigBlueButton 3.0, the default release, installs on Ubuntu 22.04.
      expect(settings.fleet?.image).toBe("ubuntu:22.04");
      expect(settings.fleet?.policy).toEqual(configFor("ionos").workers);
      // Check-ins are served by worker processes on half the control node's cores, on the port Caddy sends them to.
      const projectFiles = controlNodeProjectFiles({ env: "set1", domain: "bbb.example.org", fleetStack: "set1-fleet" });
      const caddyfile = projectFiles["Caddyfile"] ?? "";
      expect(settings.sidecar.workers).toEqual({ count: configFor("ionos").controlNode.cores / 2, port: 8081 });
      expect(caddyfile).toMatch(
        new RegExp(
          `handle /scaler/sidecar/\\* \\{\\s*uri strip_prefix /scaler\\s*reverse_proxy scaler:${settings.sidecar.workers?.port}\\s*\\}`,
        ),
      );
      expect(caddyfile.indexOf("handle /scaler/sidecar/*")).toBeLessThan(caddyfile.indexOf("handle_path /scaler/*"));
      // Prometheus discovers the workers of the very fleet the scaler drives.
      const prometheus = parse(projectFiles["prometheus.yml"] ?? "") as {
        scrape_configs: { job_name: string; http_sd_configs?: { url: string }[] }[];
      };
      const discovery = prometheus.scrape_configs.find((job) => job.job_name === "node-exporter")?.http_sd_configs?.[0]?.url;
      expect(discovery).toBe(`http://scaler:${settings.listen.port}/fleets/${settings.fleet?.template.fleet}/targets`);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
    // A changed fleet setting restarts the scaler, as a new commit or secret does.
    const scaler = mine().find((resource) => resource.name === "set1-control-scaler");
    expect((scaler?.inputs.triggers as { value: unknown[] }).value[2]).toBe(text);
  });

  it("renders a docker-compose project with every control-node service, only the TLS front published", () => {
    const compose = parse(
      controlNodeProjectFiles({ env: "prod", domain: "bbb.example.org", fleetStack: "prod-fleet" })["docker-compose.yml"] ?? "",
    ) as { services: Record<string, { ports?: string[] }> };
    expect(Object.keys(compose.services).sort()).toEqual([
      "caddy",
      "grafana",
      "postgres",
      "prometheus",
      "redis",
      "scalelite-api",
      "scalelite-nginx",
      "scalelite-poller",
      "scalelite-recording-importer",
      "scaler",
    ]);
    const published = Object.entries(compose.services)
      .filter(([, service]) => service.ports !== undefined)
      .map(([name]) => name);
    expect(published).toEqual(["caddy"]);
  });

  it("renders a Caddyfile that answers 404 for Scalelite's server API and the scaler's token-free operations routes", () => {
    const caddyfile = controlNodeProjectFiles({ env: "prod", domain: "bbb.example.org", fleetStack: "prod-fleet" })["Caddyfile"] ?? "";
    const matchers = new Map([...caddyfile.matchAll(/^\s*@(\w+) path (.+)$/gm)].map((match) => [match[1], (match[2] ?? "").split(/\s+/)]));
    const refused = [...caddyfile.matchAll(/^\s*respond @(\w+) 404$/gm)].flatMap((match) => matchers.get(match[1] ?? "") ?? []);
    expect(refused).toEqual(
      expect.arrayContaining(["/scalelite/api/*", "/scaler", "/scaler/", "/scaler/fleets", "/scaler/fleets/*", "/scaler/metrics"]),
    );
    // The sidecars, the signing keys and the token-guarded API stay published.
    for (const open of ["/scaler/sidecar/*", "/scaler/keys/*", "/scaler/api/*", "/scaler/*"]) expect(refused).not.toContain(open);
    // Inside a route, ahead of the handles: elsewhere Caddy would run the catch-all proxy first.
    const route = caddyfile.slice(caddyfile.indexOf("route {"));
    expect(caddyfile).toContain("route {");
    expect(route.indexOf("respond @scaleliteApi 404")).toBeLessThan(route.indexOf("handle"));
    expect(route.indexOf("respond @scalerOperations 404")).toBeLessThan(route.indexOf("handle"));
    expect(route).toContain("handle_path /scaler/* {");
  });

  it("renders prometheus.yml discovering workers over http_sd and scraping them with TLS and basic auth", () => {
    const prometheus = parse(
      controlNodeProjectFiles({ env: "prod", domain: "bbb.example.org", fleetStack: "prod-fleet" })["prometheus.yml"] ?? "",
    ) as { scrape_configs: Record<string, unknown>[] };
    const nodeJob = prometheus.scrape_configs.find((job) => job.job_name === "node-exporter");
    expect(nodeJob).toMatchObject({
      scheme: "https",
      basic_auth: { username: "prometheus" },
      tls_config: { insecure_skip_verify: false },
      http_sd_configs: [expect.objectContaining({ url: expect.stringContaining("scaler:8080") })],
    });
  });

  it("renders the worker's cloud-init as YAML with bbb-install for its domain and node-exporter's bcrypt web config", async () => {
    const hash = nodeExporterPasswordHash(SECRETS.nodeExporterPassword);
    expect(nodeExporterPasswordHash(SECRETS.nodeExporterPassword)).toBe(hash);
    const { default: bcrypt } = await import("bcryptjs");
    expect(bcrypt.compareSync(SECRETS.nodeExporterPassword, hash)).toBe(true);

    const bbbSecret = "f".repeat(40);
    const text = renderWorkerUserData({
      env: "prod",
      fleet: "bbb",
      name: "bbb-7",
      domain: "bbb.example.org",
      scalerUrl: "https://bbb.example.org/scaler",
      controlNodeIp: CONTROL_IP,
      nodeExporterPasswordHash: hash,
      bbbSecret,
      ...SIDECAR_KEY,
    });
    expect(text.startsWith("#cloud-config\n")).toBe(true);
    expectNoSecretText(text);
    const cloudInit = parse(text) as { runcmd: string[][]; write_files: { path: string; content: string }[] };
    expect(cloudInit.runcmd.some((step) => step.includes("/root/bbb-install.sh") && step.includes("bbb-7.bbb.example.org"))).toBe(true);
    // The fleet's shared BBB secret: a root-only file, set after bbb-install, never on a command line.
    const secretFile = cloudInit.write_files.find((file) => file.path === "/etc/confscale/bbb-secret") as
      { content: string; permissions: string } | undefined;
    expect(secretFile).toMatchObject({ content: bbbSecret, permissions: "0600" });
    const install = cloudInit.runcmd.findIndex((step) => step.includes("/root/bbb-install.sh"));
    const setSecret = cloudInit.runcmd.findIndex((step) => step.join(" ").includes("bbb-conf --setsecret"));
    expect(setSecret).toBeGreaterThan(install);
    expect(cloudInit.runcmd.flat().join(" ")).not.toContain(bbbSecret);
    expect(() =>
      renderWorkerUserData({
        env: "prod",
        fleet: "bbb",
        name: "bbb-7",
        domain: "bbb.example.org",
        scalerUrl: "https://x/scaler",
        controlNodeIp: CONTROL_IP,
        nodeExporterPasswordHash: hash,
        bbbSecret: "short; rm -rf /",
        ...SIDECAR_KEY,
      }),
    ).toThrow(/bbbSecret/);
    const webConfig = parse(cloudInit.write_files.find((file) => file.path === "/etc/prometheus/node-exporter-web.yml")?.content ?? "") as {
      basic_auth_users: Record<string, string>;
      tls_server_config: Record<string, string>;
    };
    expect(webConfig.basic_auth_users.prometheus).toBe(hash);
    expect(webConfig.tls_server_config.cert_file).toBeDefined();
    expect(cloudInit.write_files.find((file) => file.path === "/etc/default/prometheus-node-exporter")?.content).toContain(
      "--web.config.file=",
    );
    expect(JSON.stringify(cloudInit)).not.toMatch(/scalelite\/api|ssh .*scalelite/i);
  });
});

describe("the fleet program on each cloud", () => {
  const template = (cloud: "digitalocean" | "oci", env: string) => ({
    env,
    fleet: "bbb",
    domain: "bbb.example.org",
    scalerUrl: "https://bbb.example.org/scaler",
    controlNodeIp: CONTROL_IP,
    adminCidrs: ["203.0.113.0/24"],
    sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"],
    placement:
      cloud === "digitalocean"
        ? { cloud, region: "fra1", digitalocean: { vpcId: "vpc-1", workerTag: `confscale-${env}-worker`, sshKeyIds: ["key-1"] } }
        : {
            cloud,
            region: "eu-frankfurt-1",
            oci: {
              subnetId: "subnet-1",
              workerNsgId: "nsg-1",
              compartmentId: "compartment-1",
              availabilityDomain: "AD-1",
              shape: "VM.Standard.E4.Flex",
            },
          },
  });

  async function declareFleet(cloud: "digitalocean" | "oci", env: string, servers: FleetSpec["servers"]) {
    const outputs = defineFleet(
      { ...template(cloud, env), servers },
      { nodeExporterPassword: SECRETS.nodeExporterPassword, masterSecret: "b".repeat(40) },
    );
    await Promise.all(Object.values(outputs.servers).map((server) => value(server.publicIp)));
    await new Promise((resolve) => setImmediate(resolve));
    return declared.filter((resource) =>
      resource.inputs.displayName !== undefined
        ? String(resource.inputs.displayName).startsWith(`${env}-`)
        : resource.name.startsWith(`${env}-`),
    );
  }

  it("declares DigitalOcean droplets with the fleet's ownership tags, the worker firewall tag and secret user data", async () => {
    const resources = await declareFleet("digitalocean", "dofleet", [
      { name: "dofleet-1", size: { cores: 4, ramGb: 16 }, power: "running", image: "ubuntu-22-04-x64" },
    ]);
    const droplet = resources.find((resource) => resource.type === "digitalocean:index/droplet:Droplet");
    expect(droplet?.inputs).toMatchObject({ name: "dofleet-1", region: "fra1", size: "g-4vcpu-16gb", vpcUuid: "vpc-1" });
    expect(droplet?.inputs.tags).toEqual([
      "confscale:env:dofleet",
      "confscale:role:worker",
      "confscale:fleet:bbb",
      "confscale-dofleet-worker",
    ]);
    const userData = droplet?.inputs.userData as { [key: string]: unknown; value: string };
    expect(userData[pulumi.runtime.specialSigKey]).toBe(pulumi.runtime.specialSecretSig);
    expect(userData.value).toContain("bbb-conf --setsecret");
  });

  it("declares Oracle Cloud Flex instances with their power state, OCPUs (2 vCPUs each) and the fleet's freeform tags", async () => {
    const resources = await declareFleet("oci", "ocifleet", [
      { name: "ocifleet-1", size: { cores: 2, ramGb: 8 }, power: "running", image: "ocid1.image.oc1..worker" },
      { name: "ocifleet-2", size: { cores: 4, ramGb: 16 }, power: "stopped", image: "ocid1.image.oc1..worker" },
    ]);
    const instances = resources.filter((resource) => resource.type === "oci:Core/instance:Instance");
    expect(instances.map((instance) => [instance.inputs.displayName, instance.inputs.state, instance.inputs.shapeConfig])).toEqual([
      ["ocifleet-1", "RUNNING", { ocpus: 1, memoryInGbs: 8 }],
      ["ocifleet-2", "STOPPED", { ocpus: 2, memoryInGbs: 16 }],
    ]);
    expect(instances[0]?.inputs.freeformTags).toEqual({
      "confscale:env": "ocifleet",
      "confscale:role": "worker",
      "confscale:fleet": "bbb",
    });
  });
});
