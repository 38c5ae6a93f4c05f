import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";

/**
 * The registered clouds' names, for `z.enum`: each has its provider in the registry (`index.ts`), which the compiler
 * holds to exactly these names. Kept here, below every provider, so that a provider's types need not import the registry.
 */
export const CLOUD_NAMES = ["ionos", "digitalocean", "oci", "emulated"] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

/** A machine's size, as the stack config, the policy and every cloud's mapping read it. */
export const serverSizeSchema = z.strictObject({
  cores: z.number().int().min(1).max(64),
  ramGb: z.number().int().min(1).max(512),
});
export type ServerSize = z.infer<typeof serverSizeSchema>;

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
  /** The DNS zone each worker gets its address records in (confscale:dnsZone); absent, no records are declared. */
  dnsZone?: string;
  /** IONOS: data center id and public LAN id. */
  ionos?: { datacenterId: string; lanId: number; endpoint?: string; dnsEndpoint?: string; pollIntervalMs?: number };
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
  /** The machine's public IPv6 address, on clouds that give it one (DigitalOcean). */
  publicIpv6?: pulumi.Output<string>;
  resource: pulumi.Resource;
}

/** What the environment program hands a cloud to lay out its network and firewalls. */
export interface NetworkArgs<Settings> {
  env: string;
  region: string;
  /** The stack's `confscale:<cloud>` block, validated by the provider's own schema. */
  settings: Settings | undefined;
  sshPublicKeys: string[];
  controlNodeRules: FirewallRule[];
  /** The workers' rules for a given control-node address (node-exporter is open to it alone). */
  workerRules: (controlNodeIp: string) => FirewallRule[];
  /** Carries the explicit Pulumi provider (credentials, region) where the cloud has one. */
  opts: pulumi.CustomResourceOptions;
}

export interface EnvironmentNetwork {
  placement: pulumi.Output<Placement>;
  /** Rules bound to the control node itself (IONOS binds rules per NIC); empty where firewalls follow tags or groups. */
  controlNodeMachineRules: FirewallRule[];
  /** Declares what needs the control node to exist (the workers' firewall, open to its address). */
  afterControlNode(controlNode: Machine): void;
}

/** One worker's address records in the fleet's DNS zone. */
export interface DnsRecordArgs {
  /** Pulumi resource name prefix, unique in the stack (the worker's name). */
  name: string;
  /** The zone the records live in, e.g. example.org. */
  zone: string;
  /** The record's fully qualified name inside the zone, e.g. bbb-1.bbb.example.org. */
  fqdn: string;
  machine: Machine;
  placement: pulumi.Input<Placement>;
}

/** A Pulumi resource provider plugin the fleet stack needs, installed with the scaler so it never downloads while acting. */
export interface PluginNeed {
  /** Plugin name as `pulumi plugin install resource <name>` takes it. */
  name: string;
  /** The npm package whose version the plugin must match. */
  npmPackage: string;
}

/**
 * Everything cloud-specific, one object per cloud folder (infra/clouds/<cloud>/), registered in infra/clouds/index.ts.
 * The environment program, the fleet program, the config schema and the scaler only talk to clouds through it.
 */
export interface CloudProvider<Settings = unknown> {
  readonly name: string;
  readonly title: string;
  readonly capabilities: CloudCapabilities;
  /** Schema of the stack's `confscale:<name>` block; `settingsRequired` says whether a stack must have one. */
  readonly settingsSchema: z.ZodType<Settings>;
  readonly settingsRequired: boolean;
  /** The key of the placement block this cloud's machines are placed with (the emulated cloud shares IONOS's). */
  readonly placementKey: "ionos" | "digitalocean" | "oci";
  readonly placementSchema: z.ZodType;
  /**
   * The control node's and the workers' images, from the settings or the cloud's defaults: the workers' default is
   * the cloud's image of the Ubuntu release (`22.04`) the stack's BigBlueButton version installs on.
   */
  images(settings: Settings | undefined, workerUbuntu: string): { control: string; worker: string };
  /** The login the cloud's image gives the operators' keys (root's keys get a forced command under `disable_root`). */
  readonly sshUser: string;
  /** The environment variables the cloud's credentials are read from, handed on to the scaler and its engine. */
  readonly credentialVariables: readonly string[];
  /** The sets of credential variables that each sign in on their own (IONOS: a token, or a user name and password). */
  readonly credentialSets: readonly (readonly string[])[];
  /** Variables that point the cloud's API elsewhere (an emulator, a test double), handed on like the credentials. */
  readonly apiVariables: readonly string[];
  readonly plugins: readonly PluginNeed[];
  /**
   * The explicit Pulumi provider resource carrying the credentials from `env` and the stack's region, or undefined
   * where the cloud's resources read them themselves (the IONOS dynamic provider reads its variables from the engine).
   */
  pulumiProvider(name: string, region: string, env: Readonly<Record<string, string | undefined>>): pulumi.ProviderResource | undefined;
  declareNetwork(args: NetworkArgs<Settings>): EnvironmentNetwork;
  declareMachine(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine;
  /** An A record (and AAAA where the machine has IPv6) for the machine in the zone, removed with it. */
  declareDnsRecords(args: DnsRecordArgs, opts?: pulumi.CustomResourceOptions): pulumi.Resource[];
  /** The machines of the placement with their ownership labels, read from the cloud itself (the sanity check). */
  listMachines(placement: Placement, env: Readonly<Record<string, string | undefined>>): Promise<ListedMachine[]>;
}

/** Raised when a size or setting has no counterpart on the chosen cloud. */
export class CloudMappingError extends Error {
  constructor(
    readonly cloud: string,
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

/** The relative record name of `fqdn` in `zone` (`bbb-1.bbb` of `bbb-1.bbb.example.org` in `example.org`). */
export function relativeRecordName(fqdn: string, zone: string): string {
  const name = fqdn.replace(/\.$/, "").toLowerCase();
  const apex = zone.replace(/\.$/, "").toLowerCase();
  if (name === apex) return "@";
  if (!name.endsWith(`.${apex}`)) throw new CloudMappingError("dns", `${fqdn} is not inside the zone ${zone}`);
  return name.slice(0, -(apex.length + 1));
}
