import { digitalOceanAdapter } from "./digitalocean.js";
import { ionosAdapter } from "./ionos.js";
import { ociAdapter } from "./oci.js";
import type { CloudAdapter, CloudName } from "./types.js";

/** Each cloud's adapter: the environment stack and the fleet program declare their servers through it. */
export const ADAPTERS: Readonly<Record<CloudName, CloudAdapter>> = {
  ionos: ionosAdapter,
  digitalocean: digitalOceanAdapter,
  oci: ociAdapter,
};
