import * as digitalocean from "@pulumi/digitalocean";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import {
  CloudMappingError,
  ownershipTagList,
  relativeRecordName,
  type CloudProvider,
  type DnsRecordArgs,
  type FirewallRule,
  type ListedMachine,
  type Machine,
  type MachineSpec,
  type NetworkArgs,
  type Placement,
  type ServerSize,
} from "../types.js";

/** The stack's `confscale:digitalocean` block. */
export const digitalOceanSettingsSchema = z.strictObject({
  image: z.string().min(1).default("ubuntu-22-04-x64"),
  /** The workers' image; by default the Ubuntu release of `workers.bbbVersion` (BBB_RELEASES in infra/config.ts). */
  workerImage: z.string().min(1).optional(),
});
export type DigitalOceanSettings = z.infer<typeof digitalOceanSettingsSchema>;

export const digitalOceanPlacementSchema = z.strictObject({
  vpcId: z.string(),
  workerTag: z.string(),
  controlNodeTag: z.string().optional(),
  sshKeyIds: z.array(z.string()),
});

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
    throw new CloudMappingError(
      "digitalocean",
      `no droplet size with ${size.cores} vCPUs and ${size.ramGb} GB; available: ${Object.keys(DROPLET_SIZES).join(", ")} (vCPUs x GB)`,
    );
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
export function declareDigitalOceanFirewall(
  name: string,
  tag: string,
  rules: pulumi.Input<FirewallRule[]>,
  opts?: pulumi.CustomResourceOptions,
): digitalocean.Firewall {
  return new digitalocean.Firewall(
    name,
    {
      name,
      tags: [tag],
      inboundRules: pulumi.output(rules).apply((resolved) => inboundRules(resolved as FirewallRule[])),
      outboundRules: ALL_OUTBOUND,
    },
    opts,
  );
}

function declareDroplet(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine {
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
  return { id: droplet.id, publicIp: droplet.ipv4Address, publicIpv6: droplet.ipv6Address, resource: droplet };
}

export interface DigitalOceanNetwork {
  placement: pulumi.Output<Placement>;
  controlNodeTag: string;
  workerTag: string;
}

/** The environment's VPC, SSH keys and the tags the firewalls follow. */
export function declareDigitalOceanNetwork(
  env: string,
  region: string,
  sshPublicKeys: string[],
  opts?: pulumi.CustomResourceOptions,
): DigitalOceanNetwork {
  const vpc = new digitalocean.Vpc(`${env}-vpc`, { name: `confscale-${env}`, region }, opts);
  const keys = sshPublicKeys.map(
    (publicKey, index) => new digitalocean.SshKey(`${env}-ssh-${index}`, { name: `confscale-${env}-${index}`, publicKey }, opts),
  );
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

/** The variables the provider plugin and the listing read (the plugin reads them itself from the engine's environment). */
export const DIGITALOCEAN_CREDENTIAL_VARIABLES = ["DIGITALOCEAN_TOKEN"] as const;

/** DigitalOcean through @pulumi/digitalocean; firewalls follow tags, droplets have no kept power-off state. */
export const digitalOceanProvider: CloudProvider<DigitalOceanSettings> = {
  name: "digitalocean",
  title: "DigitalOcean",
  capabilities: { resizeInPlace: true, liveResize: false, powerStates: false, userDataChangeReplaces: true },
  settingsSchema: digitalOceanSettingsSchema,
  settingsRequired: false,
  placementKey: "digitalocean",
  placementSchema: digitalOceanPlacementSchema,
  images: (settings, workerUbuntu) => ({
    control: settings?.image ?? "ubuntu-22-04-x64",
    worker: settings?.workerImage ?? `ubuntu-${workerUbuntu.replace(".", "-")}-x64`,
  }),
  // cloud-init gives the image's default user the keys; root's get a forced command under `disable_root`.
  sshUser: "ubuntu",
  credentialVariables: DIGITALOCEAN_CREDENTIAL_VARIABLES,
  credentialSets: [DIGITALOCEAN_CREDENTIAL_VARIABLES],
  apiVariables: ["DIGITALOCEAN_API_URL"],
  plugins: [{ name: "digitalocean", npmPackage: "@pulumi/digitalocean" }],
  pulumiProvider: () => undefined,
  declareNetwork(args: NetworkArgs<DigitalOceanSettings>) {
    const network = declareDigitalOceanNetwork(args.env, args.region, args.sshPublicKeys, args.opts);
    declareDigitalOceanFirewall(`confscale-${args.env}-control`, network.controlNodeTag, args.controlNodeRules, args.opts);
    return {
      placement: network.placement,
      controlNodeMachineRules: [],
      afterControlNode: (controlNode) =>
        void declareDigitalOceanFirewall(
          `confscale-${args.env}-worker`,
          network.workerTag,
          controlNode.publicIp.apply((ip) => args.workerRules(ip)),
          args.opts,
        ),
    };
  },
  declareMachine: declareDroplet,
  declareDnsRecords(args: DnsRecordArgs, opts?: pulumi.CustomResourceOptions) {
    const name = relativeRecordName(args.fqdn, args.zone);
    const records = [
      new digitalocean.DnsRecord(`${args.name}-a`, { domain: args.zone, name, type: "A", value: args.machine.publicIp, ttl: 300 }, opts),
    ];
    if (args.machine.publicIpv6 !== undefined)
      records.push(
        new digitalocean.DnsRecord(
          `${args.name}-aaaa`,
          { domain: args.zone, name, type: "AAAA", value: args.machine.publicIpv6, ttl: 300 },
          opts,
        ),
      );
    return records;
  },
  listMachines: (placement, env) =>
    listDigitalOceanMachines(placement, { token: env.DIGITALOCEAN_TOKEN, endpoint: env.DIGITALOCEAN_API_URL || undefined }),
};

/** Where and as whom to call the DigitalOcean API (the caller reads DIGITALOCEAN_API_URL / DIGITALOCEAN_TOKEN). */
export interface DigitalOceanConnection {
  /** API base URL, default https://api.digitalocean.com. */
  endpoint?: string;
  token?: string;
}

/** A DigitalOcean API call that failed, with the API's own message. */
export class DigitalOceanApiError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly apiMessage: string,
  ) {
    super(`DigitalOcean ${operation} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${apiMessage}`);
    this.name = "DigitalOceanApiError";
  }
}

const DROPLET_PAGE = z.object({
  droplets: z.array(
    z.object({ id: z.number().int(), name: z.string(), vpc_uuid: z.string().nullish(), tags: z.array(z.string()).default([]) }),
  ),
  links: z.object({ pages: z.object({ next: z.string().optional() }).optional() }).optional(),
});

const API_ERROR = z.object({ id: z.string().optional(), message: z.string() });

const OWNERSHIP_TAG = /^(confscale:[^:]+):(.+)$/;

/** `confscale:env:prod` → `{"confscale:env": "prod"}`: the inverse of `ownershipTagList`; other tags are no labels. */
export function ownershipLabelsFromTags(tags: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const tag of tags) {
    const match = OWNERSHIP_TAG.exec(tag);
    if (match?.[1] !== undefined && match[2] !== undefined) labels[match[1]] = match[2];
  }
  return labels;
}

/** A list call that hangs would hold up the sanity check forever. */
const REQUEST_TIMEOUT_MS = 30_000;

async function getJson(operation: string, url: URL, token: string): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw new DigitalOceanApiError(operation, undefined, error instanceof Error ? error.message : String(error));
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new DigitalOceanApiError(operation, response.status, response.ok ? "the reply is not JSON" : `HTTP ${response.status}`);
  }
  if (!response.ok) {
    const failure = API_ERROR.safeParse(body);
    const retryAfter = response.status === 429 ? response.headers.get("retry-after") : null;
    const message = failure.success
      ? failure.data.id === undefined
        ? failure.data.message
        : `[${failure.data.id}] ${failure.data.message}`
      : `HTTP ${response.status}`;
    throw new DigitalOceanApiError(operation, response.status, retryAfter === null ? message : `${message} (retry after ${retryAfter} s)`);
  }
  return { status: response.status, body };
}

/** The droplets in the placement's VPC with their ownership labels, read straight from the API (not through Pulumi). */
export async function listDigitalOceanMachines(placement: Placement, connection: DigitalOceanConnection = {}): Promise<ListedMachine[]> {
  if (placement.digitalocean === undefined) throw new CloudMappingError("digitalocean", "the placement has no VPC");
  const vpcId = placement.digitalocean.vpcId;
  const operation = `list droplets of VPC ${vpcId}`;
  // Only the connection's: the scaler's own environment may hold another account's token.
  const token = connection.token;
  if (token === undefined || token === "") throw new DigitalOceanApiError(operation, undefined, "no credentials: set DIGITALOCEAN_TOKEN");
  const endpoint = new URL(connection.endpoint ?? "https://api.digitalocean.com");
  const droplets: ListedMachine[] = [];
  const fetched = new Set<string>();
  let next: URL | undefined = new URL(`${endpoint.pathname.replace(/\/+$/, "")}/v2/droplets?per_page=200`, endpoint);
  while (next !== undefined) {
    // The token goes only to the configured API, and a page that links back to one already read would loop.
    if (next.origin !== endpoint.origin)
      throw new DigitalOceanApiError(operation, undefined, `the next page ${next.origin}${next.pathname} is not on ${endpoint.origin}`);
    if (fetched.has(next.href))
      throw new DigitalOceanApiError(operation, undefined, `the pages link back to ${next.pathname}${next.search}`);
    fetched.add(next.href);
    const reply = await getJson(operation, next, token);
    const page = DROPLET_PAGE.safeParse(reply.body);
    if (!page.success) throw new DigitalOceanApiError(operation, reply.status, `unexpected droplet list: ${page.error.message}`);
    for (const droplet of page.data.droplets) {
      if (droplet.vpc_uuid === vpcId)
        droplets.push({ id: String(droplet.id), name: droplet.name, labels: ownershipLabelsFromTags(droplet.tags) });
    }
    const link = page.data.links?.pages?.next;
    next = link === undefined ? undefined : new URL(link, endpoint);
  }
  return droplets;
}
