import * as pulumi from "@pulumi/pulumi";
import type { FirewallRule } from "../types.js";
import {
  createDnsRecord,
  deleteDnsRecord,
  diffDnsRecord,
  updateDnsRecord,
  type IonosDnsRecordInputs,
  type IonosDnsRecordOutputs,
} from "./dns.js";
import {
  createDatacenter,
  createServer,
  deleteDatacenter,
  deleteServer,
  diffServer,
  updateServer,
  type IonosConnection,
  type IonosDatacenterInputs,
  type IonosDatacenterOutputs,
  type IonosServerInputs,
  type IonosServerOutputs,
  type VmState,
} from "./operations.js";

/** The dynamic provider of one IONOS server; every method delegates to a plain function of operations.ts. */
export const ionosServerProvider: pulumi.dynamic.ResourceProvider<IonosServerInputs, IonosServerOutputs> = {
  async create(inputs) {
    const outs = await createServer(inputs);
    return { id: outs.serverId, outs };
  },
  async diff(_id, olds, news) {
    const diff = diffServer(olds, news);
    return { changes: diff.changes, replaces: diff.replaces, deleteBeforeReplace: false };
  },
  async update(_id, olds, news) {
    return { outs: await updateServer(olds, news) };
  },
  async delete(_id, olds) {
    await deleteServer(olds);
  },
};

export const ionosDatacenterProvider: pulumi.dynamic.ResourceProvider<IonosDatacenterInputs, IonosDatacenterOutputs> = {
  async create(inputs) {
    const outs = await createDatacenter(inputs);
    return { id: outs.datacenterId, outs };
  },
  async diff(_id, olds, news) {
    const replaces = (["name", "location"] as const).filter((key) => olds[key] !== news[key]);
    // Connection settings (endpoint, polling) are not part of the data center.
    return { changes: replaces.length > 0, replaces };
  },
  async delete(_id, olds) {
    await deleteDatacenter(olds);
  },
};

export const ionosDnsRecordProvider: pulumi.dynamic.ResourceProvider<IonosDnsRecordInputs, IonosDnsRecordOutputs> = {
  async create(inputs) {
    const outs = await createDnsRecord(inputs);
    return { id: outs.recordId, outs };
  },
  async diff(_id, olds, news) {
    const diff = diffDnsRecord(olds, news);
    return { changes: diff.changes, replaces: diff.replaces, deleteBeforeReplace: true };
  },
  async update(_id, olds, news) {
    return { outs: await updateDnsRecord(olds, news) };
  },
  async delete(_id, olds) {
    await deleteDnsRecord(olds);
  },
};

type Inputs<T> = { [K in keyof T]: pulumi.Input<T[K]> };

// Credentials may arrive as secret inputs: Pulumi keeps them encrypted in state, and they are never outputs in plaintext.
const CONNECTION_IS_SECRET: pulumi.CustomResourceOptions = { additionalSecretOutputs: ["connection"] };

export class IonosServer extends pulumi.dynamic.Resource {
  declare readonly serverId: pulumi.Output<string>;
  declare readonly publicIp: pulumi.Output<string>;
  declare readonly cores: pulumi.Output<number>;
  declare readonly ramMb: pulumi.Output<number>;
  declare readonly vmState: pulumi.Output<VmState>;
  declare readonly labels: pulumi.Output<Record<string, string>>;
  declare readonly firewallRules: pulumi.Output<FirewallRule[]>;

  constructor(name: string, args: Inputs<IonosServerInputs>, opts?: pulumi.CustomResourceOptions) {
    super(
      ionosServerProvider,
      name,
      { ...args, serverId: undefined, volumeId: undefined, nicId: undefined, publicIp: undefined },
      pulumi.mergeOptions(opts, CONNECTION_IS_SECRET),
      "confscale",
      "IonosServer",
    );
  }
}

export class IonosDatacenter extends pulumi.dynamic.Resource {
  declare readonly datacenterId: pulumi.Output<string>;
  declare readonly lanId: pulumi.Output<number>;

  constructor(name: string, args: Inputs<IonosDatacenterInputs>, opts?: pulumi.CustomResourceOptions) {
    super(
      ionosDatacenterProvider,
      name,
      { ...args, datacenterId: undefined, lanId: undefined },
      pulumi.mergeOptions(opts, CONNECTION_IS_SECRET),
      "confscale",
      "IonosDatacenter",
    );
  }
}

/** One A or AAAA record in an IONOS Cloud DNS zone. */
export class IonosDnsRecord extends pulumi.dynamic.Resource {
  declare readonly zoneId: pulumi.Output<string>;
  declare readonly recordId: pulumi.Output<string>;
  declare readonly content: pulumi.Output<string>;

  constructor(name: string, args: Inputs<IonosDnsRecordInputs>, opts?: pulumi.CustomResourceOptions) {
    super(
      ionosDnsRecordProvider,
      name,
      { ...args, zoneId: undefined, recordId: undefined },
      pulumi.mergeOptions(opts, CONNECTION_IS_SECRET),
      "confscale",
      "IonosDnsRecord",
    );
  }
}

export type { IonosConnection };
