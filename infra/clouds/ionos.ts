import * as pulumi from "@pulumi/pulumi";
import {
  CLOUD_CAPABILITIES,
  CloudMappingError,
  ownershipTagMap,
  type CloudAdapter,
  type ListedMachine,
  type Machine,
  type MachineSpec,
  type Placement,
} from "./types.js";
import { IonosDatacenter, IonosServer, type IonosConnection } from "./ionos/provider.js";
import { IonosApiError, NO_IONOS_CREDENTIALS, hasIonosCredentials, listServers } from "./ionos/operations.js";

const BOOT_VOLUME_GB = 50;

/** Endpoint and request-polling pace; a local emulator answers in milliseconds, the real API in seconds. */
function connectionFor(endpoint: string | undefined, pollIntervalMs?: number): IonosConnection {
  return { ...(endpoint === undefined ? {} : { endpoint }), ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }) };
}

/** IONOS Cloud through the confscale dynamic provider (no official Pulumi provider is installable). */
export const ionosAdapter: CloudAdapter = {
  cloud: "ionos",
  capabilities: CLOUD_CAPABILITIES.ionos,
  declareMachine(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine {
    const ionos = pulumi.output(placement).apply((resolved) => {
      if (resolved.ionos === undefined) throw new CloudMappingError("ionos", `placement of ${spec.name} has no IONOS data center`);
      return resolved.ionos;
    });
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
  },
};

/** The environment's data center and public LAN; the endpoint and polling pace carry over to every machine placed in it. */
export function declareIonosNetwork(
  env: string,
  location: string,
  endpoint: string | undefined,
  pollIntervalMs?: number,
  opts?: pulumi.CustomResourceOptions,
): pulumi.Output<Placement> {
  const datacenter = new IonosDatacenter(
    `${env}-datacenter`,
    { name: `confscale-${env}`, location, connection: connectionFor(endpoint, pollIntervalMs) },
    opts,
  );
  return pulumi.all([datacenter.datacenterId, datacenter.lanId]).apply(([datacenterId, lanId]) => ({
    cloud: "ionos" as const,
    region: location,
    ionos: {
      datacenterId,
      lanId,
      ...(endpoint === undefined ? {} : { endpoint }),
      ...(pollIntervalMs === undefined ? {} : { pollIntervalMs }),
    },
  }));
}

/** The servers of the placement's data center with their labels, read straight from the API (not through Pulumi). */
export async function listIonosMachines(
  placement: Placement,
  credentials: Pick<IonosConnection, "token" | "username" | "password"> = {},
): Promise<ListedMachine[]> {
  if (placement.ionos === undefined) throw new CloudMappingError("ionos", "the placement has no IONOS data center");
  // Only the credentials handed in: the scaler's own environment may hold another account's.
  if (!hasIonosCredentials(credentials))
    throw new IonosApiError(`list servers of data center ${placement.ionos.datacenterId}`, undefined, NO_IONOS_CREDENTIALS);
  return listServers(
    { ...credentials, ...connectionFor(placement.ionos.endpoint, placement.ionos.pollIntervalMs) },
    placement.ionos.datacenterId,
  );
}
