// The registry of clouds: one line per cloud. The `cloud` enum of the stack config, the per-cloud config blocks,
// the fleet's placement schema, the credentials handed to the scaler and the plugins it needs all derive from it.
import { digitalOceanProvider } from "./digitalocean/index.js";
import { emulatedProvider } from "./emulated/index.js";
import { ionosProvider } from "./ionos/index.js";
import { ociProvider } from "./oci/index.js";
import { CLOUD_NAMES, type CloudCapabilities, type CloudName, type CloudProvider, type ListedMachine, type Placement } from "./types.js";

export const PROVIDERS = {
  ionos: ionosProvider,
  digitalocean: digitalOceanProvider,
  oci: ociProvider,
  emulated: emulatedProvider,
} as const satisfies Record<CloudName, CloudProvider>;

export { CLOUD_NAMES, type CloudName };

export function isCloudName(name: string): name is CloudName {
  return Object.hasOwn(PROVIDERS, name);
}

export function providerFor(cloud: CloudName): CloudProvider {
  return PROVIDERS[cloud] as CloudProvider;
}

/** What each cloud can do to an existing machine without replacing it. */
export const CLOUD_CAPABILITIES = Object.fromEntries(CLOUD_NAMES.map((cloud) => [cloud, PROVIDERS[cloud].capabilities])) as Readonly<
  Record<CloudName, CloudCapabilities>
>;

/** Every variable any cloud's credentials are read from (what CI and the operator's `pulumi up` must provide). */
export const CLOUD_CREDENTIAL_VARIABLES: readonly string[] = [
  ...new Set(CLOUD_NAMES.flatMap((cloud) => PROVIDERS[cloud].credentialVariables)),
];

/** The credential and API variables of every cloud: what the control node's scaler and its engine are handed. */
export const CLOUD_VARIABLES: readonly string[] = [
  ...new Set(CLOUD_NAMES.flatMap((cloud) => [...PROVIDERS[cloud].credentialVariables, ...PROVIDERS[cloud].apiVariables])),
];

/** The clouds' variables that are set (and not empty) in `env`, by name; values stay secrets wherever they go. */
export function cloudCredentialsFrom(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  return Object.fromEntries(
    CLOUD_VARIABLES.flatMap((name) => (env[name] === undefined || env[name] === "" ? [] : [[name, env[name] as string]])),
  );
}

/** The machines of the placement (IONOS data center, DigitalOcean VPC, OCI compartment and availability domain), read from the cloud itself. */
export async function listMachines(placement: Placement, env: Readonly<Record<string, string | undefined>>): Promise<ListedMachine[]> {
  return providerFor(placement.cloud).listMachines(placement, env);
}
