import * as oci from "@pulumi/oci";
import * as pulumi from "@pulumi/pulumi";
import { CLOUD_CAPABILITIES, ownershipTagMap, CloudMappingError, type CloudAdapter, type FirewallRule, type Machine, type MachineSpec, type Placement } from "./types.js";

export const DEFAULT_OCI_SHAPE = "VM.Standard.E4.Flex";

/** An OCPU is a physical core with two hardware threads: `cores` (vCPUs, as on the other clouds) map to half as many OCPUs. */
export function ocpusFor(cores: number): number {
  return Math.max(1, Math.ceil(cores / 2));
}

const PROTOCOL_NUMBER = { tcp: "6", udp: "17" } as const;

/** One NSG rule per source CIDR, as OCI wants. */
export function declareOciSecurityRules(name: string, nsgId: pulumi.Input<string>, rules: FirewallRule[], opts?: pulumi.CustomResourceOptions): oci.core.NetworkSecurityGroupSecurityRule[] {
  return rules.flatMap((rule) =>
    rule.sourceCidrs.map((source, index) => {
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
    }),
  );
}

export const ociAdapter: CloudAdapter = {
  cloud: "oci",
  capabilities: CLOUD_CAPABILITIES.oci,
  declareMachine(spec: MachineSpec, placement: pulumi.Input<Placement>, opts?: pulumi.CustomResourceOptions): Machine {
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
  },
};

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
  const vcn = new oci.core.Vcn(`${env}-vcn`, { compartmentId: settings.compartmentId, cidrBlocks: ["10.40.0.0/16"], displayName: `confscale-${env}`, freeformTags }, opts);
  const gateway = new oci.core.InternetGateway(`${env}-igw`, { compartmentId: settings.compartmentId, vcnId: vcn.id, enabled: true, freeformTags }, opts);
  const routes = new oci.core.RouteTable(
    `${env}-routes`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, routeRules: [{ destination: "0.0.0.0/0", destinationType: "CIDR_BLOCK", networkEntityId: gateway.id }], freeformTags },
    opts,
  );
  // The subnet's own security list admits nothing: every inbound rule is in a network security group.
  const closedList = new oci.core.SecurityList(
    `${env}-closed`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, egressSecurityRules: [{ destination: "0.0.0.0/0", protocol: "all" }], ingressSecurityRules: [], freeformTags },
    opts,
  );
  const subnet = new oci.core.Subnet(
    `${env}-public`,
    { compartmentId: settings.compartmentId, vcnId: vcn.id, cidrBlock: "10.40.1.0/24", routeTableId: routes.id, securityListIds: [closedList.id], displayName: `confscale-${env}-public`, freeformTags },
    opts,
  );
  const controlNsg = new oci.core.NetworkSecurityGroup(`${env}-control`, { compartmentId: settings.compartmentId, vcnId: vcn.id, displayName: `confscale-${env}-control`, freeformTags }, opts);
  const workerNsg = new oci.core.NetworkSecurityGroup(`${env}-worker`, { compartmentId: settings.compartmentId, vcnId: vcn.id, displayName: `confscale-${env}-worker`, freeformTags }, opts);
  const placement = pulumi.all([subnet.id, workerNsg.id, controlNsg.id]).apply(([subnetId, workerNsgId, controlNodeNsgId]) => ({
    cloud: "oci" as const,
    region,
    oci: { subnetId, workerNsgId, controlNodeNsgId, compartmentId: settings.compartmentId, availabilityDomain: settings.availabilityDomain, shape: settings.shape ?? DEFAULT_OCI_SHAPE },
  }));
  return { placement, controlNodeNsgId: controlNsg.id, workerNsgId: workerNsg.id };
}
