// What a real `pulumi up` needs from the clouds, with Pulumi's mocks: OCI credentials and region reach the provider,
// the SSH steps log in as the cloud's login user, each worker gets its DNS records, and both ways the environment
// program runs export the same outputs.
import * as pulumi from "@pulumi/pulumi";
import { afterEach, describe, expect, it, vi } from "vitest";
import { environmentConfigSchema, type EnvironmentConfig } from "../../infra/config.js";
import { declareEnvironment, defineEnvironment } from "../../infra/environment.js";
import { defineFleet, fleetTemplateSchema, type FleetSecrets, type FleetSpec } from "../../infra/fleet.js";

const FLEET_SECRETS: FleetSecrets = {
  nodeExporterPassword: "node-exporter-password",
  masterSecret: "fleet-master-secret-0123456789abcdef",
};
import { PROVIDERS } from "../../infra/clouds/index.js";
import { useRecordingMocks } from "./pulumiMocks.js";

const CONTROL_IP = "198.51.100.30";
const CONTROL_IPV6 = "2001:db8::30";

const declared = useRecordingMocks({ stack: "clouds", dryRun: false, ipv4: CONTROL_IP, ipv6: CONTROL_IPV6 });

afterEach(() => {
  vi.unstubAllEnvs();
});

const SECRETS = {
  scaleliteSecret: "s".repeat(40),
  grafanaAdminPassword: "grafana-admin-pw-1",
  nodeExporterPassword: "node-exporter-pw-1",
  fleetBackendUrl: "s3://confscale-state?region=eu",
  fleetPassphrase: "fleet-passphrase-123",
};

const OCI_SETTINGS = {
  compartmentId: "ocid1.compartment.oc1..aaaa",
  availabilityDomain: "Uocm:EU-FRANKFURT-1-AD-1",
  imageId: "ocid1.image.oc1..bbbb",
  workerImageId: "ocid1.image.oc1..cccc",
};

function configFor(cloud: "ionos" | "digitalocean" | "oci", extra: Record<string, unknown> = {}): EnvironmentConfig {
  return environmentConfigSchema.parse({
    cloud,
    region: cloud === "ionos" ? "de/fra" : cloud === "digitalocean" ? "fra1" : "eu-frankfurt-1",
    domain: "bbb.example.org",
    adminCidrs: ["203.0.113.0/24"],
    sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"],
    ...SECRETS,
    deployScaler: true,
    workers: { min: 1, max: 4, baseline: 1, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
    ...(cloud === "ionos" ? { ionos: { endpoint: "http://127.0.0.1:9/cloudapi/v6" } } : {}),
    ...(cloud === "oci" ? { oci: OCI_SETTINGS } : {}),
    ...extra,
  });
}

function value<T>(output: pulumi.Output<T> | T): Promise<T> {
  return pulumi.Output.isInstance(output)
    ? new Promise((resolve) => (output as pulumi.Output<T>).apply(resolve))
    : Promise.resolve(output as T);
}

async function settle(): Promise<void> {
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
}

/**
 * Every resource registration begun so far, including those waiting on another resource's outputs (a worker's DNS
 * records wait for its address), has reached the mocks: Pulumi's own queue of registrations, drained.
 */
async function registrationsSettled(): Promise<void> {
  // Exported by @pulumi/pulumi/runtime/settings.js (what `disconnect()` awaits) but left out of its typings.
  await (pulumi.runtime as unknown as { waitForRPCs: () => Promise<void> }).waitForRPCs();
}

async function declare(env: string, config: EnvironmentConfig) {
  const outputs = declareEnvironment(env, config, { repositoryRoot: process.cwd() });
  await value(outputs.controlNodeAddress);
  await value(outputs.workerPlacement);
  await settle();
  return { outputs, mine: () => declared.filter((resource) => resource.name.includes(env)) };
}

const PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

describe("Oracle Cloud credentials reach the provider", () => {
  it("hands the OCI_* variables and confscale:region to an explicit OCI provider that every OCI resource uses", async () => {
    vi.stubEnv("OCI_TENANCY_OCID", "ocid1.tenancy.oc1..tenancy");
    vi.stubEnv("OCI_USER_OCID", "ocid1.user.oc1..user");
    vi.stubEnv("OCI_FINGERPRINT", "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0");
    vi.stubEnv("OCI_PRIVATE_KEY", PEM);
    // The control node's .env is not rendered here: carrying a multi-line PEM in it is the .env renderer's part.
    const { mine } = await declare("ocicred", configFor("oci", { deployScaler: false }));
    const providers = mine().filter((resource) => resource.type === "pulumi:providers:oci");
    expect(providers).toHaveLength(1);
    const provider = providers[0]!;
    expect(provider.inputs).toMatchObject({
      region: "eu-frankfurt-1",
      tenancyOcid: "ocid1.tenancy.oc1..tenancy",
      userOcid: "ocid1.user.oc1..user",
      fingerprint: "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0",
    });
    // The key goes to the provider as a secret, so it is encrypted in state.
    const key = provider.inputs.privateKey as Record<string, unknown>;
    expect(key[pulumi.runtime.specialSigKey]).toBe(pulumi.runtime.specialSecretSig);
    expect(key.value).toBe(PEM);
    const ociResources = mine().filter((resource) => resource.type.startsWith("oci:"));
    expect(ociResources.length).toBeGreaterThan(5);
    for (const resource of ociResources) expect(resource.provider, resource.name).toContain(provider.urn);
  });

  it("gives the fleet program's workers the same explicit provider, from the credentials the scaler holds", async () => {
    const spec = fleetSpec("ocifleet", {
      cloud: "oci",
      region: "eu-frankfurt-1",
      oci: {
        subnetId: "ocid1.subnet.1",
        workerNsgId: "ocid1.nsg.1",
        compartmentId: OCI_SETTINGS.compartmentId,
        availabilityDomain: OCI_SETTINGS.availabilityDomain,
        shape: "VM.Standard.E4.Flex",
      },
    });
    defineFleet(spec, FLEET_SECRETS, { OCI_TENANCY_OCID: "ocid1.tenancy.oc1..fleet", OCI_USER_OCID: "ocid1.user.oc1..fleet" });
    await settle();
    const provider = declared.find((resource) => resource.type === "pulumi:providers:oci" && resource.name.startsWith("ocifleet-"));
    expect(provider?.inputs).toMatchObject({ region: "eu-frankfurt-1", tenancyOcid: "ocid1.tenancy.oc1..fleet" });
    const instance = declared.find((resource) => resource.type === "oci:Core/instance:Instance" && resource.name === "ocifleet-bbb-1");
    expect(instance?.provider).toContain(provider?.urn);
  });
});

describe("SSH steps log in as the cloud's login user", () => {
  it.each(["digitalocean", "ionos", "oci"] as const)("%s: every SSH step connects as the provider's user, not root", async (cloud) => {
    const env = `ssh${cloud.slice(0, 3)}`;
    const { mine } = await declare(env, configFor(cloud));
    const steps = mine().filter((resource) => resource.type.startsWith("command:remote:"));
    expect(steps.length).toBeGreaterThanOrEqual(3);
    for (const step of steps) {
      const connection = step.inputs.connection as { user: string };
      expect(connection.user, step.name).toBe(PROVIDERS[cloud].sshUser);
      expect(connection.user, step.name).not.toBe("root");
      // The cloud's explicit provider serves the cloud's resources only.
      expect(step.provider ?? "", step.name).not.toContain(`pulumi:providers:${cloud}`);
    }
  });
});

function fleetSpec(env: string, placement: FleetSpec["placement"]): FleetSpec {
  return {
    env,
    fleet: "bbb",
    placement,
    domain: "bbb.example.org",
    scalerUrl: "https://bbb.example.org/scaler",
    controlNodeIp: CONTROL_IP,
    adminCidrs: ["203.0.113.0/24"],
    sshPublicKeys: ["ssh-ed25519 AAAA admin"],
    servers: [{ name: `${env}-bbb-1`, size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu-20-04-x64" }],
  };
}

describe("every worker gets its own DNS name", () => {
  it("the stack's confscale:dnsZone reaches the fleet's placement", async () => {
    const { outputs } = await declare("dnszone", configFor("digitalocean", { dnsZone: "example.org" }));
    expect((await value(outputs.workerPlacement)).dnsZone).toBe("example.org");
  });

  it("refuses a DNS zone the domain does not lie in", () => {
    expect(() => configFor("digitalocean", { dnsZone: "example.net" })).toThrow(/must lie inside the zone example\.net/);
  });

  it("DigitalOcean: the fleet program declares an A and an AAAA record per worker in the zone, bound to the droplet", async () => {
    const spec = fleetSpec("dodns", {
      cloud: "digitalocean",
      region: "fra1",
      dnsZone: "example.org",
      digitalocean: { vpcId: "vpc-1", workerTag: "confscale-dodns-worker", sshKeyIds: ["1"] },
    });
    defineFleet(spec, FLEET_SECRETS, {});
    await registrationsSettled();
    const records = declared
      .filter((resource) => resource.type === "digitalocean:index/dnsRecord:DnsRecord" && resource.name.startsWith("dodns-"))
      .map((resource) => resource.inputs);
    expect(records).toEqual([
      expect.objectContaining({ domain: "example.org", name: "dodns-bbb-1.bbb", type: "A", value: CONTROL_IP }),
      expect.objectContaining({ domain: "example.org", name: "dodns-bbb-1.bbb", type: "AAAA", value: CONTROL_IPV6 }),
    ]);
  });

  it("Oracle Cloud: the fleet program declares the worker's A rrset; without a zone, no records", async () => {
    const placement: FleetSpec["placement"] = {
      cloud: "oci",
      region: "eu-frankfurt-1",
      oci: {
        subnetId: "ocid1.subnet.1",
        workerNsgId: "ocid1.nsg.1",
        compartmentId: OCI_SETTINGS.compartmentId,
        availabilityDomain: OCI_SETTINGS.availabilityDomain,
        shape: "VM.Standard.E4.Flex",
      },
    };
    defineFleet(fleetSpec("ocidns", { ...placement, dnsZone: "example.org" }), FLEET_SECRETS, {});
    defineFleet(fleetSpec("ocinodns", placement), FLEET_SECRETS, {});
    await registrationsSettled();
    const rrsets = declared.filter((resource) => resource.type === "oci:Dns/rrset:Rrset");
    expect(rrsets.filter((resource) => resource.name.startsWith("ocinodns-"))).toEqual([]);
    expect(rrsets.filter((resource) => resource.name.startsWith("ocidns-")).map((resource) => resource.inputs)).toEqual([
      expect.objectContaining({
        zoneNameOrId: "example.org",
        domain: "ocidns-bbb-1.bbb.example.org",
        rtype: "A",
        items: [expect.objectContaining({ domain: "ocidns-bbb-1.bbb.example.org", rtype: "A", rdata: CONTROL_IP })],
      }),
    ]);
  });
});

describe("stack outputs", () => {
  it.each(["ionos", "digitalocean", "oci"] as const)(
    "%s: the fleet program accepts the placement the environment stack exports",
    async (cloud) => {
      const { outputs } = await declare(`place${cloud.slice(0, 3)}`, configFor(cloud, { deployScaler: false, dnsZone: "example.org" }));
      const placement = await value(outputs.workerPlacement);
      expect(fleetTemplateSchema.shape.placement.parse(placement)).toEqual(placement);
    },
  );

  it("pulumi up of the project (infra/index.ts) exports the same outputs as the inline program, scalerApiToken among them", async () => {
    const config: Record<string, string> = {
      "confscale:cloud": "ionos",
      "confscale:region": "de/fra",
      "confscale:domain": "bbb.example.org",
      "confscale:adminCidrs": JSON.stringify(["203.0.113.0/24"]),
      "confscale:sshPublicKeys": JSON.stringify(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"]),
      "confscale:deployScaler": "false",
      "confscale:ionos": JSON.stringify({ endpoint: "http://127.0.0.1:9/cloudapi/v6" }),
      "confscale:workers": JSON.stringify({
        min: 1,
        max: 4,
        baseline: 1,
        defaultSize: { cores: 4, ramGb: 8 },
        maxSize: { cores: 8, ramGb: 16 },
      }),
      "confscale:scaleliteSecret": SECRETS.scaleliteSecret,
      "confscale:grafanaAdminPassword": SECRETS.grafanaAdminPassword,
      "confscale:nodeExporterPassword": SECRETS.nodeExporterPassword,
    };
    pulumi.runtime.setAllConfig(config, ["confscale:scaleliteSecret", "confscale:grafanaAdminPassword", "confscale:nodeExporterPassword"]);
    const inline = Object.keys(defineEnvironment()).sort();
    // The project's main as the engine loads it: a default export is called and its result taken, else the named exports.
    const main = (await import("../../infra/index.js")) as Record<string, unknown>;
    const project =
      typeof main.default === "function"
        ? Object.keys((await (main.default as () => Promise<Record<string, unknown>>)()) ?? {})
        : Object.keys(main).filter((name) => name !== "default");
    expect(project.sort()).toEqual(inline);
    expect(inline).toContain("scalerApiToken");
  });
});
