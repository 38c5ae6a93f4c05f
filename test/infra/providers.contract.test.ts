// Every registered cloud provider through the same suite, with Pulumi's mocks: what it declares for a machine, its
// firewalls and DNS records, and what it says about itself (capabilities, credentials, login, plugins).
import { createRequire } from "node:module";
import type * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CLOUD_NAMES, CLOUD_VARIABLES, PROVIDERS, type CloudName } from "../../infra/clouds/index.js";
import { CloudMappingError, type CloudProvider, type FirewallRule, type Machine, type Placement } from "../../infra/clouds/types.js";
import { renderControlNodeUserData } from "../../infra/templates.js";
import { useRecordingMocks, type DeclaredResource } from "./pulumiMocks.js";

const IPV4 = "198.51.100.20";
const IPV6 = "2001:db8::20";

const declared = useRecordingMocks({ stack: "contract", dryRun: false, ipv4: IPV4, ipv6: IPV6 });

function value<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/** Lets resources declared inside applies register. */
async function settled(...outputs: pulumi.Output<unknown>[]): Promise<void> {
  for (const output of outputs) await value(output);
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
}

/** How the suite reads a cloud's declarations back: the one thing each cloud's resources spell differently. */
interface Reading {
  placement: Placement;
  settings: unknown;
  machine(resource: DeclaredResource): { labels: Record<string, string>; cores: number; ramGb: number; running: boolean } | undefined;
  /** Every inbound rule the resources open, as `protocol/from-to source`, by the role it protects. */
  rules(resources: DeclaredResource[], role: "control" | "worker", env: string): string[];
  dns(resource: DeclaredResource): { type: string; fqdn: string; value: unknown } | undefined;
}

const DROPLET_SLUG = /^[sgm]-(\d+)vcpu-(\d+)gb$/;

function ionosReading(cloud: "ionos" | "emulated"): Reading {
  return {
    placement: { cloud, region: "de/fra", ionos: { datacenterId: "dc-1", lanId: 1, endpoint: "http://127.0.0.1:9/cloudapi/v6" } },
    settings: { endpoint: "http://127.0.0.1:9/cloudapi/v6" },
    machine: (resource) =>
      resource.type === "pulumi-nodejs:dynamic/confscale:IonosServer"
        ? {
            labels: resource.inputs.labels as Record<string, string>,
            cores: resource.inputs.cores as number,
            ramGb: (resource.inputs.ramMb as number) / 1024,
            running: resource.inputs.vmState === "RUNNING",
          }
        : undefined,
    rules: (resources, role, env) =>
      resources
        .filter((resource) => resource.type === "pulumi-nodejs:dynamic/confscale:IonosServer")
        .filter((resource) => (resource.inputs.labels as Record<string, string>)["confscale:role"] === role)
        .filter((resource) => (resource.inputs.labels as Record<string, string>)["confscale:env"] === env)
        .flatMap((resource) => resource.inputs.firewallRules as FirewallRule[])
        .flatMap((rule) => rule.sourceCidrs.map((source) => `${rule.protocol}/${rule.fromPort}-${rule.toPort} ${source}`)),
    dns: (resource) =>
      resource.type === "pulumi-nodejs:dynamic/confscale:IonosDnsRecord"
        ? {
            type: resource.inputs.type as string,
            fqdn: `${resource.inputs.name as string}.${resource.inputs.zoneName as string}`,
            value: resource.inputs.content,
          }
        : undefined,
  };
}

const READINGS: Record<CloudName, Reading> = {
  ionos: ionosReading("ionos"),
  emulated: ionosReading("emulated"),
  digitalocean: {
    placement: {
      cloud: "digitalocean",
      region: "fra1",
      digitalocean: { vpcId: "vpc-1", workerTag: "confscale-c-worker", controlNodeTag: "confscale-c-control", sshKeyIds: ["1"] },
    },
    settings: undefined,
    machine: (resource) => {
      if (resource.type !== "digitalocean:index/droplet:Droplet") return undefined;
      const [, cores, ramGb] = DROPLET_SLUG.exec(resource.inputs.size as string) ?? [];
      const labels = Object.fromEntries(
        (resource.inputs.tags as string[]).flatMap((tag) => {
          const match = /^(confscale:[^:]+):(.+)$/.exec(tag);
          return match === null ? [] : [[match[1], match[2]]];
        }),
      );
      return { labels, cores: Number(cores), ramGb: Number(ramGb), running: true };
    },
    rules: (resources, role, env) => {
      type Inbound = { protocol: string; portRange: string; sourceAddresses: string[] };
      return resources
        .filter((resource) => resource.type === "digitalocean:index/firewall:Firewall")
        .filter((resource) => (resource.inputs.tags as string[]).includes(`confscale-${env}-${role}`))
        .flatMap((resource) => resource.inputs.inboundRules as Inbound[])
        .flatMap((rule) => {
          const [from, to = from] = rule.portRange.split("-");
          return rule.sourceAddresses.map((source) => `${rule.protocol}/${from}-${to} ${source}`);
        });
    },
    dns: (resource) =>
      resource.type === "digitalocean:index/dnsRecord:DnsRecord"
        ? {
            type: resource.inputs.type as string,
            fqdn: `${resource.inputs.name as string}.${resource.inputs.domain as string}`,
            value: resource.inputs.value,
          }
        : undefined,
  },
  oci: {
    placement: {
      cloud: "oci",
      region: "eu-frankfurt-1",
      oci: {
        subnetId: "ocid1.subnet.1",
        workerNsgId: "ocid1.nsg.worker",
        controlNodeNsgId: "ocid1.nsg.control",
        compartmentId: "ocid1.compartment.oc1..c",
        availabilityDomain: "AD-1",
        shape: "VM.Standard.E4.Flex",
      },
    },
    settings: {
      compartmentId: "ocid1.compartment.oc1..c",
      availabilityDomain: "AD-1",
      imageId: "ocid1.image.oc1..control",
      workerImageId: "ocid1.image.oc1..worker",
    },
    machine: (resource) => {
      if (resource.type !== "oci:Core/instance:Instance") return undefined;
      const shape = resource.inputs.shapeConfig as { ocpus: number; memoryInGbs: number };
      // An OCPU is two vCPUs.
      return {
        labels: resource.inputs.freeformTags as Record<string, string>,
        cores: shape.ocpus * 2,
        ramGb: shape.memoryInGbs,
        running: resource.inputs.state === "RUNNING",
      };
    },
    rules: (resources, role, env) =>
      resources
        .filter((resource) => resource.type === "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule")
        .filter((resource) => resource.name.startsWith(`${env}-${role}-`))
        .map((resource) => {
          const options = (resource.inputs.tcpOptions ?? resource.inputs.udpOptions) as {
            destinationPortRange: { min: number; max: number };
          };
          const protocol = resource.inputs.protocol === "6" ? "tcp" : "udp";
          return `${protocol}/${options.destinationPortRange.min}-${options.destinationPortRange.max} ${resource.inputs.source as string}`;
        }),
    dns: (resource) => {
      if (resource.type !== "oci:Dns/rrset:Rrset") return undefined;
      const [item] = resource.inputs.items as { rdata: unknown }[];
      return { type: resource.inputs.rtype as string, fqdn: resource.inputs.domain as string, value: item?.rdata };
    },
  },
};

const CONTROL_RULES: FirewallRule[] = [
  { description: "https", protocol: "tcp", fromPort: 443, toPort: 443, sourceCidrs: ["0.0.0.0/0", "::/0"] },
  { description: "ssh", protocol: "tcp", fromPort: 22, toPort: 22, sourceCidrs: ["203.0.113.0/24"] },
];
const workerRules = (controlNodeIp: string): FirewallRule[] => [
  { description: "media", protocol: "udp", fromPort: 16384, toPort: 32768, sourceCidrs: ["0.0.0.0/0"] },
  { description: "node-exporter", protocol: "tcp", fromPort: 9100, toPort: 9100, sourceCidrs: [`${controlNodeIp}/32`] },
];
const asStrings = (rules: FirewallRule[]) =>
  rules.flatMap((rule) => rule.sourceCidrs.map((source) => `${rule.protocol}/${rule.fromPort}-${rule.toPort} ${source}`)).sort();

function worker(
  provider: CloudProvider,
  env: string,
  name: string,
  power: "running" | "stopped",
  firewallRules: FirewallRule[] = [],
): Machine {
  return provider.declareMachine(
    {
      name,
      size: { cores: 4, ramGb: 16 },
      image: provider.images(READINGS[provider.name as CloudName].settings, "22.04").worker,
      userData: "#cloud-config\n",
      sshPublicKeys: ["ssh-ed25519 AAAA admin"],
      powerState: power,
      ownership: { env, role: "worker", fleet: "bbb" },
      firewallRules,
    },
    READINGS[provider.name as CloudName].placement,
  );
}

describe.each(CLOUD_NAMES)("cloud provider contract: %s", (cloud) => {
  const provider = PROVIDERS[cloud] as CloudProvider;
  const reading = READINGS[cloud];
  const env = `c-${cloud}`;

  it("is registered under its own name and says what it is", () => {
    expect(provider.name).toBe(cloud);
    expect(provider.title.length).toBeGreaterThan(0);
    expect(
      provider.placementSchema.safeParse((reading.placement as unknown as Record<string, unknown>)[provider.placementKey]).success,
    ).toBe(true);
  });

  it("names the credential variables it reads, each handed on to the scaler", () => {
    expect(provider.credentialVariables.length).toBeGreaterThan(0);
    for (const variable of provider.credentialVariables) {
      expect(variable).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(CLOUD_VARIABLES).toContain(variable);
    }
    expect(provider.credentialSets.length).toBeGreaterThan(0);
    for (const set of provider.credentialSets) for (const variable of set) expect(provider.credentialVariables).toContain(variable);
    for (const variable of provider.apiVariables) {
      expect(variable).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(CLOUD_VARIABLES).toContain(variable);
    }
  });

  it("logs in as a user the control node's cloud-init does not lock out", () => {
    expect(provider.sshUser).toMatch(/^[a-z_][a-z0-9_-]*$/);
    const cloudInit = parse(renderControlNodeUserData({ env: "c", domain: "bbb.example.org", fleetStack: "c-fleet" })) as {
      disable_root?: boolean;
    };
    // Under disable_root, cloud-init gives root's keys a forced command that only prints which user to log in as.
    if (cloudInit.disable_root === true) expect(provider.sshUser).not.toBe("root");
  });

  it("names plugins that are installed packages", () => {
    const require = createRequire(import.meta.url);
    for (const plugin of provider.plugins) expect(() => require.resolve(`${plugin.npmPackage}/package.json`)).not.toThrow();
  });

  it("has images for the control node and the workers", () => {
    const images = provider.images(reading.settings, "22.04");
    expect(images.control.length).toBeGreaterThan(0);
    expect(images.worker.length).toBeGreaterThan(0);
  });

  it("declares a worker with its ownership labels at the asked size", async () => {
    const machine = worker(provider, env, `${env}-bbb-1`, "running");
    await settled(machine.id, machine.publicIp);
    const read = declared.map(reading.machine).find((found) => found?.labels["confscale:env"] === env);
    expect(read).toEqual({
      labels: { "confscale:env": env, "confscale:role": "worker", "confscale:fleet": "bbb" },
      cores: 4,
      ramGb: 16,
      running: true,
    });
  });

  it("keeps a stopped worker exactly when its capabilities say it has power states", async () => {
    const name = `${env}-bbb-stopped`;
    if (!provider.capabilities.powerStates) {
      expect(() => worker(provider, `${env}-s`, name, "stopped")).toThrow(CloudMappingError);
      return;
    }
    const machine = worker(provider, `${env}-s`, name, "stopped");
    await settled(machine.id);
    const read = declared.map(reading.machine).find((found) => found?.labels["confscale:env"] === `${env}-s`);
    expect(read?.running).toBe(false);
    // Live resize implies resize in place.
    if (provider.capabilities.liveResize) expect(provider.capabilities.resizeInPlace).toBe(true);
  });

  it("opens exactly the environment's firewall rules, the workers' to the control node's address", async () => {
    const network = provider.declareNetwork({
      env,
      region: reading.placement.region,
      settings: reading.settings,
      sshPublicKeys: ["ssh-ed25519 AAAA admin"],
      controlNodeRules: CONTROL_RULES,
      workerRules,
      opts: {},
    });
    const control = provider.declareMachine(
      {
        name: `${env}-control`,
        size: { cores: 4, ramGb: 16 },
        image: provider.images(reading.settings, "22.04").control,
        userData: "#cloud-config\n",
        sshPublicKeys: [],
        powerState: "running",
        ownership: { env, role: "control" },
        firewallRules: network.controlNodeMachineRules,
      },
      network.placement,
    );
    network.afterControlNode(control);
    // Where rules are bound per machine, the fleet program hands each worker its own.
    const ip = await value(control.publicIp);
    const machine = worker(provider, env, `${env}-bbb-fw`, "running", workerRules(ip));
    await settled(network.placement, control.publicIp, machine.id);
    const resources = declared.filter((resource) => resource.name.includes(env));
    expect(reading.rules(resources, "control", env).sort()).toEqual(asStrings(CONTROL_RULES));
    expect([...new Set(reading.rules(resources, "worker", env))].sort()).toEqual(asStrings(workerRules(IPV4)));
    expect((await value(network.placement)).cloud).toBe(cloud);
  });

  it("declares an A record for the worker's name, and an AAAA record where the machine has IPv6", async () => {
    const machine = worker(provider, env, `${env}-bbb-dns`, "running");
    const records = provider.declareDnsRecords({
      name: `${env}-bbb-dns`,
      zone: "example.org",
      fqdn: `${env}-bbb-dns.bbb.example.org`,
      machine,
      placement: reading.placement,
    });
    await settled(machine.publicIp, ...(machine.publicIpv6 === undefined ? [] : [machine.publicIpv6]));
    const found = declared
      .filter((resource) => resource.name.startsWith(`${env}-bbb-dns-`))
      .map(reading.dns)
      .filter((record) => record !== undefined);
    const expected = [{ type: "A", fqdn: `${env}-bbb-dns.bbb.example.org`, value: IPV4 }];
    if (machine.publicIpv6 !== undefined) expected.push({ type: "AAAA", fqdn: `${env}-bbb-dns.bbb.example.org`, value: IPV6 });
    expect(found).toEqual(expected);
    expect(records).toHaveLength(expected.length);
  });

  it("refuses to list machines without credentials, naming the variables to set, before any request", async () => {
    const failure = await provider.listMachines(reading.placement, {}).then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    expect(failure).toBeInstanceOf(Error);
    expect(provider.credentialVariables.some((variable) => failure?.message.includes(variable))).toBe(true);
  });
});
