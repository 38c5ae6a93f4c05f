import { listDigitalOceanMachines } from "./digitalocean.js";
import { listIonosMachines } from "./ionos.js";
import { listOciMachines } from "./oci.js";
import type { CloudName, ListedMachine, Placement } from "./types.js";

/**
 * Each cloud's listing, with the credentials and endpoint overrides of `env`: the scaler's secrets may come from an
 * environment other than its own process's (the demo hands its runtime one).
 */
const LISTERS: Readonly<Record<CloudName, (placement: Placement, env: NodeJS.ProcessEnv) => Promise<ListedMachine[]>>> = {
  ionos: (placement, env) =>
    listIonosMachines(placement, { token: env.IONOS_TOKEN, username: env.IONOS_USERNAME, password: env.IONOS_PASSWORD }),
  digitalocean: (placement, env) =>
    listDigitalOceanMachines(placement, { token: env.DIGITALOCEAN_TOKEN, endpoint: env.DIGITALOCEAN_API_URL || undefined }),
  oci: (placement, env) =>
    listOciMachines(placement, {
      tenancyOcid: env.OCI_TENANCY_OCID,
      userOcid: env.OCI_USER_OCID,
      fingerprint: env.OCI_FINGERPRINT,
      privateKey: env.OCI_PRIVATE_KEY,
      region: env.OCI_REGION,
      endpoint: env.OCI_API_URL || undefined,
    }),
};

/** The machines of the placement (IONOS data center, DigitalOcean VPC, OCI compartment and availability domain), read from the cloud itself. */
export async function listMachines(placement: Placement, env: NodeJS.ProcessEnv): Promise<ListedMachine[]> {
  return LISTERS[placement.cloud](placement, env);
}
