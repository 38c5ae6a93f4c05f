import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import type { ServerSize } from "../config.js";
import { CLOUD_CAPABILITIES, CloudMappingError, ownershipTagList, type CloudAdapter, type FirewallRule, type Machine, type MachineSpec, type Placement } from "./types.js";

/** Droplet size slugs by vCPUs and GB of RAM (basic, general-purpose and memory-optimized plans). */
const DROPLET_SIZES: Readonly<Record<string, string>> = {
  "1x1": "s-1vcpu-1gb",
  "1x2": "s-1vcpu-2gb",
  "2x2": "s-2vcpu-2gb",
  "2x4": "s-2vcpu-4gb",
  "4x8": "s-4vcpu-8gb",
  "8x16": "s-8vcpu-16gb",
  "2x8": "g-2vcpu-8gb",
  "4x16": "g-4vcpu-16gb",
  "8x32": "g-8vcpu-32gb",
  "16x64": "g-16vcpu-64gb",
  "2x16": "m-2vcpu-16gb",
  "4x32": "m-4vcpu-32gb",
  "8x64": "m-8vcpu-64gb",
};

export function dropletSize(size: ServerSize): string {
  const slug = DROPLET_SIZES[`${size.cores}x${size.ramGb}`];
  if (slug === undefined) {
    throw new CloudMappingError("digitalocean", `no droplet size with ${size.cores} vCPUs and ${size.ramGb} GB; available: ${Object.keys(DROPLET_SIZES).join(", ")} (vCPUs x GB)`);
  }
  return slug;
}

/** DigitalOcean droplet tags allow letters, digits, `_`, `-` and `:` only. */
function tagResourceName(tag: string): string {
  return tag.replace(/[^a-zA-Z0-9_-]/g, "-");
}

function inboundRules(rules: FirewallRule[]): digitalocean.types.input.FirewallInboundRule[] {
  return rules.map((rule) => ({
    protocol: rule.protocol,
    portRange: rule.fromPort === rule.toPort ? String(rule.fromPort) : `${rule.fromPort}-${rule.toPort}`,
    sourceAddresses: rule.sourceCidrs,
  }));
}

const ALL_OUTBOUND: digitalocean.types.input.FirewallOutboundRule[] = [
  { protocol: "tcp", portRange: "1-65535", destinationAddresses: ["0.0.0.0/0", "::/0"] },
  { protocol: "udp", portRange: "1-65535", destinationAddresses: ["0.0.0.0/0", "::/0"] },
  { protocol: "icmp", destinationAddresses: ["0.0.0.0/0", "::/0"] },
];

/** DigitalOcean firewalls follow tags: the rules live in the environment stack, droplets only carry the tag. */
export function declareDigitalOceanFirewall(name: string, tag: string, rules: pulumi.Input<FirewallRule[]>, opts?: pulumi.CustomResourceOptions): digitalocean.Firewall {
  return new digitalocean.Firewall(
    name,
    { name, tags: [tag], inboundRules: pulumi.output(rules).apply((resolved) => inboundRules(resolved as FirewallRule[])), outboundRules: ALL_OUTBOUND },
    opts,
  );
}

export const digitalOceanAdapter: CloudAdapter = {
  cloud: "digitalocean",
  capabilities: CLOUD_CAPABILITIES.digitalocean,
  declareMachine(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine {
    if (spec.powerState !== "running") {
      throw new CloudMappingError("digitalocean", `${spec.name}: droplets have no kept power-off state; scale in by destroying after drain`);
    }
    const resolved = pulumi.output(placement);
    const droplet = new digitalocean.Droplet(
      spec.name,
      {
        name: spec.name,
        region: resolved.region,
        size: dropletSize(spec.size),
        image: spec.image,
        userData: spec.userData,
        vpcUuid: resolved.apply((p) => p.digitalocean?.vpcId ?? ""),
        sshKeys: resolved.apply((p) => p.digitalocean?.sshKeyIds ?? []),
        // The role tag puts the droplet under its firewall.
        tags: resolved.apply((p) => {
          if (p.digitalocean === undefined) throw new CloudMappingError("digitalocean", `placement of ${spec.name} has no VPC`);
          const roleTag = spec.ownership.role === "worker" ? p.digitalocean.workerTag : p.digitalocean.controlNodeTag;
          if (roleTag === undefined) throw new CloudMappingError("digitalocean", `placement of ${spec.name} has no control-node tag`);
          return [...ownershipTagList(spec.ownership), roleTag];
        }),
        ipv6: true,
        monitoring: false,
        resizeDisk: false,
      },
      opts,
    );
    return { id: droplet.id, publicIp: droplet.ipv4Address, resource: droplet };
  },
};

export interface DigitalOceanNetwork {
  placement: pulumi.Output<Placement>;
  controlNodeTag: string;
  workerTag: string;
}

/** The environment's VPC, SSH keys and the tags the firewalls follow. */
export function declareDigitalOceanNetwork(env: string, region: string, sshPublicKeys: string[], opts?: pulumi.CustomResourceOptions): DigitalOceanNetwork {
  const vpc = new digitalocean.Vpc(`${env}-vpc`, { name: `confscale-${env}`, region }, opts);
  const keys = sshPublicKeys.map((publicKey, index) => new digitalocean.SshKey(`${env}-ssh-${index}`, { name: `confscale-${env}-${index}`, publicKey }, opts));
  const controlNodeTag = `confscale-${env}-control`;
  const workerTag = `confscale-${env}-worker`;
  for (const tag of [controlNodeTag, workerTag]) new digitalocean.Tag(tagResourceName(tag), { name: tag }, opts);
  const placement = pulumi.all([vpc.id, pulumi.all(keys.map((key) => key.id))]).apply(([vpcId, sshKeyIds]) => ({
    cloud: "digitalocean" as const,
    region,
    digitalocean: { vpcId, workerTag, controlNodeTag, sshKeyIds },
  }));
  return { placement, controlNodeTag, workerTag };
}
