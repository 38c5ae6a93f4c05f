import { listDigitalOceanMachines } from "./digitalocean.js";
import { listIonosMachines } from "./ionos.js";
import { listOciMachines } from "./oci.js";
import type { CloudName, Placement } from "./types.js";

/** A machine as its cloud lists it, with its ownership labels: what the sanity check compares with the fleet stack. */
export interface ListedMachine {
  /** The cloud's id of the machine, the same as its Pulumi resource's id. */
  id: string;
  name: string;
  labels: Record<string, string>;
}

/** Each cloud's listing, called with the credentials and endpoint overrides of the process environment. */
const LISTERS: Readonly<Record<CloudName, (placement: Placement) => Promise<ListedMachine[]>>> = {
  ionos: listIonosMachines,
  digitalocean: (placement) => listDigitalOceanMachines(placement),
  oci: (placement) => listOciMachines(placement),
};

/** The machines of the placement (IONOS data center, DigitalOcean VPC, OCI compartment and availability domain), read from the cloud itself. */
export async function listMachines(placement: Placement): Promise<ListedMachine[]> {
  return LISTERS[placement.cloud](placement);
}
