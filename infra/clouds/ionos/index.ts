import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import {
  CloudMappingError,
  ownershipTagMap,
  relativeRecordName,
  type CloudProvider,
  type DnsRecordArgs,
  type ListedMachine,
  type Machine,
  type MachineSpec,
  type NetworkArgs,
  type Placement,
} from "../types.js";
import { IonosDatacenter, IonosDnsRecord, IonosServer, type IonosConnection } from "./provider.js";
import { IonosApiError, NO_IONOS_CREDENTIALS, hasIonosCredentials, listServers } from "./operations.js";

const BOOT_VOLUME_GB = 50;

/** The public Cloud DNS API (its zones and records live apart from the Cloud API's data centers). */
export const IONOS_DNS_ENDPOINT = "https://dns.de-fra.ionos.com";

/** The stack's `confscale:ionos` block (and the emulated cloud's `confscale:emulated`). */
export const ionosSettingsSchema = z.strictObject({
  /** API base URL; the default is IONOS's public API. */
  endpoint: z.url().optional(),
  /** Cloud DNS API base URL, default https://dns.de-fra.ionos.com. */
  dnsEndpoint: z.url().optional(),
  image: z.string().min(1).default("ubuntu:22.04"),
  /** The workers' image; by default the Ubuntu release of `workers.bbbVersion` (BBB_RELEASES in infra/config.ts). */
  workerImage: z.string().min(1).optional(),
  /** How often a write's request status is polled (default 2 s); an emulator answers in milliseconds. */
  pollIntervalMs: z.number().int().min(10).max(60_000).optional(),
});
export type IonosSettings = z.infer<typeof ionosSettingsSchema>;

export const ionosPlacementSchema = z.strictObject({
  datacenterId: z.string().min(1),
  lanId: z.number().int(),
  endpoint: z.string().optional(),
  dnsEndpoint: z.string().optional(),
  pollIntervalMs: z.number().int().positive().optional(),
});

/** The variables the dynamic provider and the listing read: a token, or a user name and password. */
export const IONOS_CREDENTIAL_VARIABLES = ["IONOS_TOKEN", "IONOS_USERNAME", "IONOS_PASSWORD"] as const;

/** Endpoint and request-polling pace; a local emulator answers in milliseconds, the real API in seconds. */
function connectionFor(endpoint: string | undefined, pollIntervalMs?: number): IonosConnection {
  return { ...(endpoint === undefined ? {} : { endpoint }), ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }) };
}

function ionosPlacement(cloud: string, placement: pulumi.Input<Placement>, what: string) {
  return pulumi.output(placement).apply((resolved) => {
    if (resolved.ionos === undefined) throw new CloudMappingError(cloud, `placement of ${what} has no IONOS data center`);
    return resolved.ionos;
  });
}

function declareIonosMachine(
  cloud: string,
  spec: MachineSpec,
  placement: pulumi.Input<Placement>,
  opts?: pulumi.CustomResourceOptions,
): Machine {
  const ionos = ionosPlacement(cloud, placement, spec.name);
  const server = new IonosServer(
    spec.name,
    {
      datacenterId: ionos.datacenterId,
      lanId: ionos.lanId,
      name: spec.name,
      cores: spec.size.cores,
      ramMb: spec.size.ramGb * 1024,
      image: spec.image,
      volumeSizeGb: BOOT_VOLUME_GB,
      userData: spec.userData,
      sshKeys: spec.sshPublicKeys,
      vmState: spec.powerState === "running" ? "RUNNING" : "SHUTOFF",
      labels: ownershipTagMap(spec.ownership),
      firewallRules: spec.firewallRules,
      connection: ionos.apply((settings) => connectionFor(settings.endpoint, settings.pollIntervalMs)),
    },
    opts,
  );
  return { id: server.serverId, publicIp: server.publicIp, resource: server };
}

/** The environment's data center and public LAN; the endpoints and polling pace carry over to every machine placed in it. */
export function declareIonosNetwork(
  cloud: "ionos" | "emulated",
  env: string,
  location: string,
  settings: Pick<IonosSettings, "endpoint" | "dnsEndpoint" | "pollIntervalMs">,
  opts?: pulumi.CustomResourceOptions,
): pulumi.Output<Placement> {
  const { endpoint, dnsEndpoint, pollIntervalMs } = settings;
  const datacenter = new IonosDatacenter(
    `${env}-datacenter`,
    { name: `confscale-${env}`, location, connection: connectionFor(endpoint, pollIntervalMs) },
    opts,
  );
  return pulumi.all([datacenter.datacenterId, datacenter.lanId]).apply(([datacenterId, lanId]) => ({
    cloud,
    region: location,
    ionos: {
      datacenterId,
      lanId,
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(dnsEndpoint === undefined ? {} : { dnsEndpoint }),
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
    },
  }));
}

/** The servers of the placement's data center with their labels, read straight from the API (not through Pulumi). */
export async function listIonosMachines(
  placement: Placement,
  credentials: Pick<IonosConnection, "token" | "username" | "password"> = {},
): Promise<ListedMachine[]> {
  if (placement.ionos === undefined) throw new CloudMappingError(placement.cloud, "the placement has no IONOS data center");
  // Only the credentials handed in: the scaler's own environment may hold another account's.
  if (!hasIonosCredentials(credentials))
    throw new IonosApiError(`list servers of data center ${placement.ionos.datacenterId}`, undefined, NO_IONOS_CREDENTIALS);
  return listServers(
    { ...credentials, ...connectionFor(placement.ionos.endpoint, placement.ionos.pollIntervalMs) },
    placement.ionos.datacenterId,
  );
}

/** IONOS Cloud, or a cloud that speaks its API (the emulator): one set of declarations, its own name and defaults. */
export function ionosFamilyProvider(options: {
  name: "ionos" | "emulated";
  title: string;
  /** Cloud API and Cloud DNS API URLs used when the stack names none. */
  defaultEndpoint?: string;
  defaultDnsEndpoint: string;
  sshUser: string;
}): CloudProvider<IonosSettings> {
  const cloud = options.name;
  const endpointOf = (settings: IonosSettings | undefined) => settings?.endpoint ?? options.defaultEndpoint;
  return {
    name: cloud,
    title: options.title,
    capabilities: { resizeInPlace: true, liveResize: true, powerStates: true, userDataChangeReplaces: true },
    settingsSchema: ionosSettingsSchema,
    settingsRequired: false,
    placementKey: "ionos",
    placementSchema: ionosPlacementSchema,
    images: (settings, workerUbuntu) => ({
      control: settings?.image ?? "ubuntu:22.04",
      worker: settings?.workerImage ?? `ubuntu:${workerUbuntu}`,
    }),
    sshUser: options.sshUser,
    credentialVariables: IONOS_CREDENTIAL_VARIABLES,
    credentialSets: [["IONOS_TOKEN"], ["IONOS_USERNAME", "IONOS_PASSWORD"]],
    apiVariables: ["IONOS_API_URL"],
    // A dynamic provider: it runs in the engine's Node.js plugin host, no provider plugin to install.
    plugins: [],
    // The dynamic provider reads IONOS_* from the engine's environment, which the scaler hands it.
    pulumiProvider: () => undefined,
    declareNetwork(args: NetworkArgs<IonosSettings>) {
      const endpoint = endpointOf(args.settings);
      const placement = declareIonosNetwork(
        cloud,
        args.env,
        args.region,
        {
          ...(endpoint === undefined ? {} : { endpoint }),
          // The default DNS endpoint is applied where records are declared, so placements name only what a stack set.
          ...(args.settings?.dnsEndpoint === undefined ? {} : { dnsEndpoint: args.settings.dnsEndpoint }),
          ...(args.settings?.pollIntervalMs === undefined ? {} : { pollIntervalMs: args.settings.pollIntervalMs }),
        },
        args.opts,
      );
      // Rules are bound to each NIC: the control node carries its own, workers get theirs from the fleet program.
      return { placement, controlNodeMachineRules: args.controlNodeRules, afterControlNode: () => undefined };
    },
    declareMachine: (spec, placement, opts) => declareIonosMachine(cloud, spec, placement, opts),
    declareDnsRecords(args: DnsRecordArgs, opts?: pulumi.CustomResourceOptions) {
      const ionos = ionosPlacement(cloud, args.placement, args.name);
      const connection = ionos.apply((settings) =>
        connectionFor(settings.dnsEndpoint ?? options.defaultDnsEndpoint, settings.pollIntervalMs),
      );
      const name = relativeRecordName(args.fqdn, args.zone);
      const records = [
        new IonosDnsRecord(
          `${args.name}-a`,
          { zoneName: args.zone, name, type: "A", content: args.machine.publicIp, ttl: 300, connection },
          { ...opts, deleteBeforeReplace: true },
        ),
      ];
      if (args.machine.publicIpv6 !== undefined)
        records.push(
          new IonosDnsRecord(
            `${args.name}-aaaa`,
            { zoneName: args.zone, name, type: "AAAA", content: args.machine.publicIpv6, ttl: 300, connection },
            { ...opts, deleteBeforeReplace: true },
          ),
        );
      return records;
    },
    listMachines: (placement, env) =>
      listIonosMachines(placement, { token: env.IONOS_TOKEN, username: env.IONOS_USERNAME, password: env.IONOS_PASSWORD }),
  };
}

/** IONOS Cloud through the confscale dynamic provider (no official Pulumi provider is installable). */
export const ionosProvider = ionosFamilyProvider({
  name: "ionos",
  title: "IONOS Cloud",
  defaultDnsEndpoint: IONOS_DNS_ENDPOINT,
  // cloud-init gives the image's default user the keys; root's get a forced command under `disable_root`.
  sshUser: "ubuntu",
});
