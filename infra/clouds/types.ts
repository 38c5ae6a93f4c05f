import type * as pulumi from "@pulumi/pulumi";
import type { ServerSize } from "../config.js";

export type CloudName = "ionos" | "digitalocean" | "oci";
export type PowerState = "running" | "stopped";
export type MachineRole = "control" | "worker";

/** What a cloud can do to an existing machine without replacing it (DESIGN.md, "Clouds"). */
export interface CloudCapabilities {
  /** cores/RAM change in place. */
  resizeInPlace: boolean;
  /** the in-place resize keeps the machine running (no reboot or power cycle). */
  liveResize: boolean;
  /** machines can be powered off and on again while kept. */
  powerStates: boolean;
  /** a user-data change creates a new machine. */
  userDataChangeReplaces: boolean;
}

export const CLOUD_CAPABILITIES: Readonly<Record<CloudName, CloudCapabilities>> = {
  ionos: { resizeInPlace: true, liveResize: true, powerStates: true, userDataChangeReplaces: true },
  digitalocean: { resizeInPlace: true, liveResize: false, powerStates: false, userDataChangeReplaces: true },
  oci: { resizeInPlace: true, liveResize: false, powerStates: true, userDataChangeReplaces: true },
};

/** Who owns a machine: the scaler never touches a machine without its environment's and fleet's tags. */
export interface Ownership {
  env: string;
  role: MachineRole;
  /** Workers only: the fleet that owns the machine. */
  fleet?: string;
}

/** A TCP or UDP port range opened to a list of source CIDRs. */
export interface FirewallRule {
  description: string;
  protocol: "tcp" | "udp";
  fromPort: number;
  toPort: number;
  sourceCidrs: string[];
}

/**
 * Plain identifiers of the environment's network, exported by the environment stack and handed to the
 * fleet program, so workers land beside the control node without the fleet stack owning the network.
 */
export interface Placement {
  cloud: CloudName;
  region: string;
  /** IONOS: data center id and public LAN id. */
  ionos?: { datacenterId: string; lanId: number; endpoint?: string; pollIntervalMs?: number };
  /** DigitalOcean: VPC id; the firewalls follow the role tags. */
  digitalocean?: { vpcId: string; workerTag: string; controlNodeTag?: string; sshKeyIds: string[] };
  /** Oracle Cloud: subnet and the network security group of each role. */
  oci?: {
    subnetId: string;
    workerNsgId: string;
    controlNodeNsgId?: string;
    compartmentId: string;
    availabilityDomain: string;
    shape: string;
  };
}

/** One machine as the environment program (control node) and the fleet program (workers) declare it. */
export interface MachineSpec {
  /** Unique within the environment; also the cloud's display name. */
  name: string;
  size: ServerSize;
  /** The cloud's image name/alias/OCID. */
  image: string;
  userData: pulumi.Input<string>;
  sshPublicKeys: string[];
  powerState: PowerState;
  ownership: Ownership;
  /**
   * Firewall rules bound to the machine itself. Only IONOS binds rules per NIC; on DigitalOcean and
   * Oracle Cloud the environment's firewalls apply by tag / network security group instead.
   */
  firewallRules: pulumi.Input<FirewallRule[]>;
}

export interface Machine {
  /** The cloud's id of the machine. */
  id: pulumi.Output<string>;
  publicIp: pulumi.Output<string>;
  resource: pulumi.Resource;
}

/** One cloud behind the same calls; the same adapter declares the control node and every worker. */
export interface CloudAdapter {
  readonly cloud: CloudName;
  readonly capabilities: CloudCapabilities;
  declareMachine(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine;
}

/** Raised when a size or setting has no counterpart on the chosen cloud. */
export class CloudMappingError extends Error {
  constructor(
    readonly cloud: CloudName,
    message: string,
  ) {
    super(`${cloud}: ${message}`);
    this.name = "CloudMappingError";
  }
}

/** Tags as `key:value` strings for clouds that only have flat tags (DigitalOcean). */
export function ownershipTagList(ownership: Ownership): string[] {
  const tags = [`confscale:env:${ownership.env}`, `confscale:role:${ownership.role}`];
  if (ownership.fleet !== undefined) tags.push(`confscale:fleet:${ownership.fleet}`);
  return tags;
}

/** Tags as a key → value map for clouds with labelled tags (Oracle Cloud, IONOS labels). */
export function ownershipTagMap(ownership: Ownership): Record<string, string> {
  const tags: Record<string, string> = { "confscale:env": ownership.env, "confscale:role": ownership.role };
  if (ownership.fleet !== undefined) tags["confscale:fleet"] = ownership.fleet;
  return tags;
}

/** A machine as its cloud lists it, with its ownership labels: what the sanity check compares with the fleet stack. */
export interface ListedMachine {
  /** The cloud's id of the machine, the same as its Pulumi resource's id (a droplet's number as a string, an OCID). */
  id: string;
  name: string;
  labels: Record<string, string>;
}
