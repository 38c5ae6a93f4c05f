import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { bbbVersionSchema, serverSizeSchema, workerNameSchema } from "./config.js";
import { CLOUD_NAMES, PROVIDERS, providerFor } from "./clouds/index.js";
import type { Placement } from "./clouds/types.js";
import { jitsiWorkerFirewallRules, workerFirewallRules } from "./firewall.js";
import { fleetWorkloadSchema, type FleetWorkload, type JitsiSecrets } from "./jitsi.js";
import { JitsiSidecarKey } from "./jitsiSidecarKey.js";
import { nodeExporterPasswordHash, renderJitsiWorkerUserData, renderWorkerUserData } from "./templates.js";
import { jitsiWorkerKeyId, workerCredentials } from "./workerCredentials.js";

/** The fleet stack's project name. */
export const FLEET_PROJECT = "confscale-fleet";

/**
 * The secrets the fleet program needs, handed to it in memory by whoever runs it (never through `pulumi config set`,
 * whose command line any local user can read in `ps`).
 */
export interface FleetSecrets {
  nodeExporterPassword: string;
  /** The fleet's master secret (the scaler's CONFSCALE_BBB_SECRET): each worker gets only what is derived from it. */
  masterSecret: string;
  /** A Jitsi fleet's XMPP passwords (jitsiSecretsFromEnv in infra/jitsi.ts); its workers cannot be rendered without them. */
  jitsi?: JitsiSecrets;
}

export const fleetServerSchema = z.strictObject({
  /** Stable and unique in the environment: the machine's name, host name prefix and Scalelite id. */
  name: workerNameSchema,
  size: serverSizeSchema,
  power: z.enum(["running", "stopped"]),
  image: z.string().min(1),
  zone: z.string().min(1).optional(),
});
export type FleetServer = z.infer<typeof fleetServerSchema>;

/** Each placement block once (the emulated cloud places its machines like IONOS), with its provider's schema. */
const placementBlocks = Object.fromEntries(
  CLOUD_NAMES.map((cloud) => [PROVIDERS[cloud].placementKey, PROVIDERS[cloud].placementSchema.optional()]),
) as Record<string, z.ZodOptional<z.ZodType>>;

const placementSchema = z.strictObject({
  cloud: z.enum(CLOUD_NAMES),
  region: z.string().min(1),
  /** The DNS zone each worker gets its A (and AAAA) record in; without one, no records are declared. */
  dnsZone: z.string().min(1).optional(),
  ...placementBlocks,
}) as unknown as z.ZodType<Placement>;

/** Where a fleet's workers go and what their template needs: everything of a spec but its servers. */
export const fleetTemplateSchema = z.strictObject({
  env: z.string().min(1),
  fleet: z.string().min(1),
  placement: placementSchema,
  domain: z.string().min(1),
  scalerUrl: z.url(),
  controlNodeIp: z.string().min(1),
  /** The BigBlueButton release the workers install (the environment's workers.bbbVersion). */
  bbbVersion: bbbVersionSchema.optional(),
  adminCidrs: z.array(z.string()).min(1),
  sshPublicKeys: z.array(z.string()),
  /** What the machines run; absent means BigBlueButton workers (specs stored before Jitsi fleets existed). */
  workload: fleetWorkloadSchema.optional(),
});
export type FleetTemplate = z.infer<typeof fleetTemplateSchema>;

/** Everything the fleet program declares: a pure description, kept in Redis and exported by the fleet stack. */
export const fleetSpecSchema = fleetTemplateSchema.extend({ servers: z.array(fleetServerSchema) }).superRefine((spec, ctx) => {
  const seen = new Set<string>();
  spec.servers.forEach((server, index) => {
    if (seen.has(server.name))
      ctx.addIssue({ code: "custom", path: ["servers", index, "name"], message: `duplicate server name ${server.name}` });
    seen.add(server.name);
  });
});
export type FleetSpec = z.infer<typeof fleetSpecSchema>;

export interface FleetOutputs {
  /** The spec this update applied: with the stack's state it survives the loss of Redis. */
  spec: FleetSpec;
  servers: Record<
    string,
    {
      id: pulumi.Output<string>;
      publicIp: pulumi.Output<string>;
      /** A Jitsi worker's sidecar key id and public key: what the scaler serves at /keys/<sha256 hex of keyId>.pem. */
      sidecarKey?: { keyId: pulumi.Output<string>; publicKeyPem: pulumi.Output<string> };
    }
  >;
}

/**
 * The fleet program: every worker of one fleet, declared from the spec and nothing else, so no other program can
 * revert what the scaler decided. Secrets come in memory, never from the spec; each worker's user data carries only
 * its own BBB secret and sidecar key (infra/workerCredentials.ts), so one worker's metadata opens no other.
 */
export function defineFleet(
  spec: FleetSpec,
  fleetSecrets: FleetSecrets,
  env: Readonly<Record<string, string | undefined>> = process.env,
): FleetOutputs {
  const provider = providerFor(spec.placement.cloud);
  const cloudProvider = provider.pulumiProvider(`${spec.env}-${spec.fleet}-${spec.placement.cloud}`, spec.placement.region, env);
  const opts: pulumi.CustomResourceOptions = cloudProvider === undefined ? {} : { provider: cloudProvider };
  const secrets = pulumi.all([
    pulumi.secret(fleetSecrets.nodeExporterPassword).apply(nodeExporterPasswordHash),
    pulumi.secret(fleetSecrets.masterSecret),
  ]);
  const workload: FleetWorkload = spec.workload ?? { kind: "bbb" };
  const firewallRules =
    workload.kind === "jitsi"
      ? jitsiWorkerFirewallRules(workload.component, spec.adminCidrs, spec.controlNodeIp, workload.signaling.websocketProxyCidrs ?? [])
      : workerFirewallRules(spec.adminCidrs, spec.controlNodeIp);
  const servers: FleetOutputs["servers"] = {};
  for (const server of spec.servers) {
    let sidecarKey: { keyId: pulumi.Output<string>; publicKeyPem: pulumi.Output<string> } | undefined;
    let userData: pulumi.Output<string>;
    if (workload.kind === "jitsi") {
      // Generated once and kept in the stack's state: the same key, and so the same user data, on every `up`.
      const key = new JitsiSidecarKey(`${server.name}-sidecar-key`);
      const keyId = key.publicKeyPem.apply((pem) => jitsiWorkerKeyId(spec.fleet, server.name, pem));
      sidecarKey = { keyId, publicKeyPem: key.publicKeyPem };
      userData = pulumi.all([secrets, key.privateKeyPem, keyId]).apply(([[hash], privateKeyPem, sidecarKeyId]) =>
        renderJitsiWorkerUserData({
          env: spec.env,
          fleet: spec.fleet,
          group: workload.group,
          component: workload.component,
          signaling: workload.signaling,
          name: server.name,
          domain: spec.domain,
          scalerUrl: spec.scalerUrl,
          controlNodeIp: spec.controlNodeIp,
          nodeExporterPasswordHash: hash,
          sidecarKeyId,
          sidecarSigningKey: privateKeyPem,
          secrets: fleetSecrets.jitsi ?? {},
          region: spec.placement.region,
          cloud: spec.placement.cloud,
        }),
      );
    } else {
      userData = secrets.apply(([hash, masterSecret]) => {
        const credentials = workerCredentials(masterSecret, spec.fleet, server.name);
        return renderWorkerUserData({
          env: spec.env,
          fleet: spec.fleet,
          name: server.name,
          domain: spec.domain,
          scalerUrl: spec.scalerUrl,
          controlNodeIp: spec.controlNodeIp,
          ...(spec.bbbVersion === undefined ? {} : { bbbVersion: spec.bbbVersion }),
          nodeExporterPasswordHash: hash,
          bbbSecret: credentials.bbbSecret,
          sidecarKeyId: credentials.keyId,
          sidecarSigningKey: credentials.signingKeyPem,
        });
      });
    }
    const machine = provider.declareMachine(
      {
        name: server.name,
        size: server.size,
        image: server.image,
        userData,
        sshPublicKeys: spec.sshPublicKeys,
        powerState: server.power,
        ownership: { env: spec.env, role: "worker", fleet: spec.fleet },
        firewallRules,
      },
      spec.placement,
      opts,
    );
    // bbb-install and Let's Encrypt (certbot on Jitsi workers) need each worker's own name: a wildcard can point at one address only.
    if (spec.placement.dnsZone !== undefined)
      provider.declareDnsRecords(
        { name: server.name, zone: spec.placement.dnsZone, fqdn: `${server.name}.${spec.domain}`, machine, placement: spec.placement },
        { ...opts, deleteBeforeReplace: true },
      );
    servers[server.name] = { id: machine.id, publicIp: machine.publicIp, ...(sidecarKey === undefined ? {} : { sidecarKey }) };
  }
  return { spec, servers };
}
