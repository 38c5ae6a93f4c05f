import { createPrivateKey } from "node:crypto";
import * as oci from "@pulumi/oci";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import {
  ownershipTagMap,
  relativeRecordName,
  CloudMappingError,
  type CloudProvider,
  type DnsRecordArgs,
  type FirewallRule,
  type ListedMachine,
  type Machine,
  type MachineSpec,
  type NetworkArgs,
  type Placement,
} from "../types.js";

export const DEFAULT_OCI_SHAPE = "VM.Standard.E4.Flex";

/** An OCPU is a physical core with two hardware threads: `cores` (vCPUs, as on the other clouds) map to half as many OCPUs. */
export function ocpusFor(cores: number): number {
  return Math.max(1, Math.ceil(cores / 2));
}

/** The stack's `confscale:oci` block: OCI has no image aliases, so both images are OCIDs of the region. */
export const ociSettingsSchema = z.strictObject({
  compartmentId: z.string().regex(/^ocid1\.compartment\./, "expected a compartment OCID (ocid1.compartment.…)"),
  availabilityDomain: z.string().min(1),
  imageId: z.string().regex(/^ocid1\.image\./, "expected an image OCID (ocid1.image.…)"),
  /** The workers' image: an x86_64 Ubuntu image of the region, of the release `workers.bbbVersion` installs on. */
  workerImageId: z.string().regex(/^ocid1\.image\./, "expected the OCID of an Ubuntu image (ocid1.image.…) for the workers"),
  shape: z.string().min(1).optional(),
});
export type OciSettings = z.infer<typeof ociSettingsSchema>;

export const ociPlacementSchema = z.strictObject({
  subnetId: z.string(),
  workerNsgId: z.string(),
  controlNodeNsgId: z.string().optional(),
  compartmentId: z.string(),
  availabilityDomain: z.string(),
  shape: z.string(),
});

const PROTOCOL_NUMBER = { tcp: "6", udp: "17" } as const;

/** One rule for one source: the shape of an NSG rule, whose source may only be known once another resource exists. */
interface RuleSlot {
  rule: FirewallRule;
  index: number;
  source: pulumi.Input<string>;
}

function declareRuleSlots(
  name: string,
  nsgId: pulumi.Input<string>,
  slots: RuleSlot[],
  opts?: pulumi.CustomResourceOptions,
): oci.core.NetworkSecurityGroupSecurityRule[] {
  return slots.map(({ rule, index, source }) => {
    const portRange = { destinationPortRange: { min: rule.fromPort, max: rule.toPort } };
    return new oci.core.NetworkSecurityGroupSecurityRule(
      `${name}-${rule.protocol}-${rule.fromPort}-${index}`,
      {
        networkSecurityGroupId: nsgId,
        direction: "INGRESS",
        protocol: PROTOCOL_NUMBER[rule.protocol],
        source,
        sourceType: "CIDR_BLOCK",
        description: rule.description,
        stateless: false,
        ...(rule.protocol === "tcp" ? { tcpOptions: portRange } : { udpOptions: portRange }),
      },
      opts,
    );
  });
}

/** One NSG rule per source CIDR, as OCI wants. */
export function declareOciSecurityRules(
  name: string,
  nsgId: pulumi.Input<string>,
  rules: FirewallRule[],
  opts?: pulumi.CustomResourceOptions,
): oci.core.NetworkSecurityGroupSecurityRule[] {
  return declareRuleSlots(
    name,
    nsgId,
    rules.flatMap((rule) => rule.sourceCidrs.map((source, index) => ({ rule, index, source }))),
    opts,
  );
}

/** TEST-NET-1 (RFC 5737): the rules are laid out with it, so their count and ports are known before the control node exists. */
const STAND_IN_ADDRESS = "192.0.2.1";

/**
 * Rules whose sources depend on an address known only after `up` creates it (the control node's): declared outside
 * any `apply`, so `pulumi preview` lists every one of them; only each rule's source waits for the address.
 */
export function declareOciSecurityRulesFor(
  name: string,
  nsgId: pulumi.Input<string>,
  rulesFor: (address: string) => FirewallRule[],
  address: pulumi.Output<string>,
  opts?: pulumi.CustomResourceOptions,
): oci.core.NetworkSecurityGroupSecurityRule[] {
  const layout = rulesFor(STAND_IN_ADDRESS);
  const resolved = address.apply((ip) => {
    const rules = rulesFor(ip);
    const shape = (list: FirewallRule[]) =>
      list.map((rule) => `${rule.protocol}/${rule.fromPort}-${rule.toPort}x${rule.sourceCidrs.length}`);
    if (JSON.stringify(shape(rules)) !== JSON.stringify(shape(layout)))
      throw new CloudMappingError("oci", `the rules of ${name} change shape with the address ${ip}`);
    return rules;
  });
  const slots = layout.flatMap((rule, position) =>
    rule.sourceCidrs.map((_, index) => ({ rule, index, source: resolved.apply((rules) => rules[position]!.sourceCidrs[index]!) })),
  );
  return declareRuleSlots(name, nsgId, slots, opts);
}

function declareOciInstance(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine {
  const settings = pulumi.output(placement).apply((resolved) => {
    if (resolved.oci === undefined) throw new CloudMappingError("oci", `placement of ${spec.name} has no subnet`);
    return resolved.oci;
  });
  const nsgIds = settings.apply((s) => {
    const nsgId = spec.ownership.role === "worker" ? s.workerNsgId : s.controlNodeNsgId;
    if (nsgId === undefined) throw new CloudMappingError("oci", `placement of ${spec.name} has no control-node security group`);
    return [nsgId];
  });
  const instance = new oci.core.Instance(
    spec.name,
    {
      displayName: spec.name,
      compartmentId: settings.compartmentId,
      availabilityDomain: settings.availabilityDomain,
      shape: settings.shape,
      shapeConfig: { ocpus: ocpusFor(spec.size.cores), memoryInGbs: spec.size.ramGb },
      sourceDetails: { sourceType: "image", sourceId: spec.image },
      createVnicDetails: { subnetId: settings.subnetId, assignPublicIp: "true", nsgIds },
      metadata: {
        ssh_authorized_keys: spec.sshPublicKeys.join("\n"),
        user_data: pulumi.output(spec.userData).apply((text) => Buffer.from(text, "utf8").toString("base64")),
      },
      state: spec.powerState === "running" ? "RUNNING" : "STOPPED",
      freeformTags: ownershipTagMap(spec.ownership),
    },
    opts,
  );
  return { id: instance.id, publicIp: instance.publicIp, resource: instance };
}

export interface OciNetwork {
  placement: pulumi.Output<Placement>;
  controlNodeNsgId: pulumi.Output<string>;
  workerNsgId: pulumi.Output<string>;
}

/** VCN with an internet gateway and one public subnet; firewalls are network security groups. */
export function declareOciNetwork(
  env: string,
  region: string,
  settings: { compartmentId: string; availabilityDomain: string; shape?: string },
  opts?: pulumi.CustomResourceOptions,
): OciNetwork {
  const freeformTags = { "confscale:env": env };
  const vcn = new oci.core.Vcn(
    `${env}-vcn`,
    { compartmentId: settings.compartmentId, cidrBlocks: ["10.40.0.0/16"], displayName: `confscale-${env}`, freeformTags },
    opts,
  );
  const gateway = new oci.core.InternetGateway(
    `${env}-igw`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, enabled: true, freeformTags },
    opts,
  );
  const routes = new oci.core.RouteTable(
    `${env}-routes`,
    {
      compartmentId: settings.compartmentId,
      vcnId: vcn.id,
      routeRules: [{ destination: "0.0.0.0/0", destinationType: "CIDR_BLOCK", networkEntityId: gateway.id }],
      freeformTags,
    },
    opts,
  );
  // The subnet's own security list admits nothing: every inbound rule is in a network security group.
  const closedList = new oci.core.SecurityList(
    `${env}-closed`,
    {
      compartmentId: settings.compartmentId,
      vcnId: vcn.id,
      egressSecurityRules: [{ destination: "0.0.0.0/0", protocol: "all" }],
      ingressSecurityRules: [],
      freeformTags,
    },
    opts,
  );
  const subnet = new oci.core.Subnet(
    `${env}-public`,
    {
      compartmentId: settings.compartmentId,
      vcnId: vcn.id,
      cidrBlock: "10.40.1.0/24",
      routeTableId: routes.id,
      securityListIds: [closedList.id],
      displayName: `confscale-${env}-public`,
      freeformTags,
    },
    opts,
  );
  const controlNsg = new oci.core.NetworkSecurityGroup(
    `${env}-control`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, displayName: `confscale-${env}-control`, freeformTags },
    opts,
  );
  const workerNsg = new oci.core.NetworkSecurityGroup(
    `${env}-worker`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, displayName: `confscale-${env}-worker`, freeformTags },
    opts,
  );
  const placement = pulumi.all([subnet.id, workerNsg.id, controlNsg.id]).apply(([subnetId, workerNsgId, controlNodeNsgId]) => ({
    cloud: "oci" as const,
    region,
    oci: {
      subnetId,
      workerNsgId,
      controlNodeNsgId,
      compartmentId: settings.compartmentId,
      availabilityDomain: settings.availabilityDomain,
      shape: settings.shape ?? DEFAULT_OCI_SHAPE,
    },
  }));
  return { placement, controlNodeNsgId: controlNsg.id, workerNsgId: workerNsg.id };
}

/** API signing credentials of an OCI user; each falls back to its environment variable (OCI_TENANCY_OCID, …). */
export interface OciCredentials {
  tenancyOcid: string;
  userOcid: string;
  fingerprint: string;
  /** PEM text of the API signing key. */
  privateKey: string;
  region: string;
}

/** Where and as whom to call the OCI Core Services API. */
export interface OciConnection extends Partial<OciCredentials> {
  /** API base URL without the version path, default the region's (the caller reads OCI_API_URL). */
  endpoint?: string;
}

const CREDENTIAL_VARIABLES: Readonly<Record<keyof OciCredentials, string>> = {
  tenancyOcid: "OCI_TENANCY_OCID",
  userOcid: "OCI_USER_OCID",
  fingerprint: "OCI_FINGERPRINT",
  privateKey: "OCI_PRIVATE_KEY",
  region: "OCI_REGION",
};

/** OCI credentials that are missing or unusable, named by their environment variables (never their values). */
export class OciCredentialsError extends Error {
  constructor(
    readonly variables: string[],
    problem: string,
  ) {
    super(`OCI credentials: ${variables.join(", ")} ${problem}`);
    this.name = "OciCredentialsError";
  }
}

/** An OCI API call that failed, with the API's own message. */
export class OciApiError extends Error {
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    readonly apiMessage: string,
    readonly requestId?: string,
  ) {
    super(
      `OCI ${operation} failed${status === undefined ? "" : ` (HTTP ${status})`}: ${apiMessage}${requestId === undefined ? "" : ` [request ${requestId}]`}`,
    );
    this.name = "OciApiError";
  }
}

function ociCredentials(connection: OciConnection): OciCredentials {
  // Only the connection's: the scaler's own environment may hold another tenancy's.
  const entries = (Object.keys(CREDENTIAL_VARIABLES) as (keyof OciCredentials)[]).map((key) => [key, connection[key]] as const);
  const missing = entries.filter(([, value]) => value === undefined || value === "").map(([key]) => CREDENTIAL_VARIABLES[key]);
  if (missing.length > 0) throw new OciCredentialsError(missing, missing.length === 1 ? "is not set" : "are not set");
  const credentials = Object.fromEntries(entries) as unknown as OciCredentials;
  try {
    createPrivateKey(credentials.privateKey);
  } catch {
    throw new OciCredentialsError([CREDENTIAL_VARIABLES.privateKey], "is not a readable PEM private key");
  }
  return credentials;
}

const INSTANCE = z.object({
  id: z.string(),
  displayName: z.string().optional(),
  lifecycleState: z.string(),
  freeformTags: z.record(z.string(), z.string()).optional(),
});

/** The instances of the placement's compartment and availability domain with their labels, read straight from the API (not through Pulumi). */
export async function listOciMachines(placement: Placement, connection: OciConnection = {}): Promise<ListedMachine[]> {
  if (placement.oci === undefined) throw new CloudMappingError("oci", "the placement has no compartment");
  const { compartmentId, availabilityDomain } = placement.oci;
  const credentials = ociCredentials(connection);
  // Loaded on first use: the SDK takes about a second to load and the Pulumi programs importing this file never call it.
  const [{ ComputeClient }, { OciError, SimpleAuthenticationDetailsProvider }] = await Promise.all([
    import("oci-core"),
    import("oci-common"),
  ]);
  const client = new ComputeClient({
    authenticationDetailsProvider: new SimpleAuthenticationDetailsProvider(
      credentials.tenancyOcid,
      credentials.userOcid,
      credentials.fingerprint,
      credentials.privateKey,
      null,
    ),
  });
  const endpoint = connection.endpoint;
  if (endpoint === undefined) client.regionId = credentials.region;
  else client.endpoint = endpoint.replace(/\/+$/, "");
  const operation = `list instances of compartment ${compartmentId} in ${availabilityDomain}`;
  const instances: ListedMachine[] = [];
  try {
    for await (const page of client.listInstancesResponseIterator({ compartmentId, availabilityDomain })) {
      const items = z.array(INSTANCE).safeParse(page.items);
      if (!items.success)
        throw new OciApiError(operation, undefined, `unexpected instance list: ${items.error.message}`, page.opcRequestId ?? undefined);
      for (const instance of items.data) {
        if (instance.lifecycleState === "TERMINATED") continue;
        instances.push({ id: instance.id, name: instance.displayName ?? instance.id, labels: instance.freeformTags ?? {} });
      }
    }
  } catch (error) {
    if (error instanceof OciApiError) throw error;
    if (error instanceof OciError)
      throw new OciApiError(
        operation,
        error.statusCode,
        error.serviceCode === "" || error.serviceCode === "None" ? error.message : `[${error.serviceCode}] ${error.message}`,
        error.opcRequestId ?? undefined,
      );
    throw new OciApiError(operation, undefined, error instanceof Error ? error.message : String(error));
  } finally {
    client.close();
  }
  return instances;
}

/** The variables the OCI provider and the listing read: the API signing key's parts (OCI_REGION only overrides the stack's region for the listing). */
export const OCI_CREDENTIAL_VARIABLES = Object.values(CREDENTIAL_VARIABLES);

/**
 * The explicit OCI provider: pulumi-oci reads only `oci:*` config or its own variables, so the `OCI_*` variables the
 * operator and the scaler hold are handed over as arguments, with the stack's region.
 */
export function ociPulumiProvider(name: string, region: string, env: Readonly<Record<string, string | undefined>>): oci.Provider {
  const given = (variable: string) => (env[variable] === undefined || env[variable] === "" ? undefined : env[variable]);
  const privateKey = given(CREDENTIAL_VARIABLES.privateKey);
  return new oci.Provider(name, {
    region,
    tenancyOcid: given(CREDENTIAL_VARIABLES.tenancyOcid),
    userOcid: given(CREDENTIAL_VARIABLES.userOcid),
    fingerprint: given(CREDENTIAL_VARIABLES.fingerprint),
    ...(privateKey === undefined ? {} : { privateKey: pulumi.secret(privateKey) }),
  });
}

/** Oracle Cloud through @pulumi/oci: Flex shapes resize in place, firewalls are network security groups. */
export const ociProvider: CloudProvider<OciSettings> = {
  name: "oci",
  title: "Oracle Cloud",
  capabilities: { resizeInPlace: true, liveResize: false, powerStates: true, userDataChangeReplaces: true },
  settingsSchema: ociSettingsSchema,
  settingsRequired: true,
  placementKey: "oci",
  placementSchema: ociPlacementSchema,
  images: (settings) => ({ control: settings?.imageId ?? "", worker: settings?.workerImageId ?? "" }),
  // Oracle's Ubuntu images log the operators' keys in as `ubuntu`.
  sshUser: "ubuntu",
  credentialVariables: OCI_CREDENTIAL_VARIABLES,
  // The region comes from the stack.
  credentialSets: [OCI_CREDENTIAL_VARIABLES.filter((name) => name !== "OCI_REGION")],
  apiVariables: ["OCI_API_URL"],
  plugins: [{ name: "oci", npmPackage: "@pulumi/oci" }],
  pulumiProvider: ociPulumiProvider,
  declareNetwork(args: NetworkArgs<OciSettings>) {
    if (args.settings === undefined) throw new CloudMappingError("oci", "the stack has no confscale:oci settings");
    const network = declareOciNetwork(args.env, args.region, args.settings, args.opts);
    declareOciSecurityRules(`${args.env}-control`, network.controlNodeNsgId, args.controlNodeRules, args.opts);
    return {
      placement: network.placement,
      controlNodeMachineRules: [],
      afterControlNode: (controlNode) =>
        void declareOciSecurityRulesFor(`${args.env}-worker`, network.workerNsgId, args.workerRules, controlNode.publicIp, args.opts),
    };
  },
  declareMachine: declareOciInstance,
  declareDnsRecords(args: DnsRecordArgs, opts?: pulumi.CustomResourceOptions) {
    // The domain must be lower case and fully qualified as OCI normalises it, or every `up` shows a diff.
    const domain = `${relativeRecordName(args.fqdn, args.zone)}.${args.zone.toLowerCase()}`;
    const rrset = (rtype: "A" | "AAAA", rdata: pulumi.Output<string>) =>
      new oci.dns.Rrset(
        `${args.name}-${rtype.toLowerCase()}`,
        { zoneNameOrId: args.zone, domain, rtype, items: [{ domain, rtype, rdata, ttl: 300 }] },
        opts,
      );
    return [rrset("A", args.machine.publicIp), ...(args.machine.publicIpv6 === undefined ? [] : [rrset("AAAA", args.machine.publicIpv6)])];
  },
  listMachines: (placement, env) =>
    listOciMachines(placement, {
      tenancyOcid: env.OCI_TENANCY_OCID,
      userOcid: env.OCI_USER_OCID,
      fingerprint: env.OCI_FINGERPRINT,
      privateKey: env.OCI_PRIVATE_KEY,
      region: env.OCI_REGION || placement.region,
      endpoint: env.OCI_API_URL || undefined,
    }),
};
