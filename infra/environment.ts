import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { StackConfigError, type EnvironmentConfig } from "./config.js";
import { ADAPTERS } from "./clouds/adapters.js";
import { declareDigitalOceanFirewall, declareDigitalOceanNetwork } from "./clouds/digitalocean.js";
import { declareIonosNetwork } from "./clouds/ionos.js";
import { declareOciNetwork, declareOciSecurityRules } from "./clouds/oci.js";
import type { FirewallRule, Placement } from "./clouds/types.js";
import { declareControlNode } from "./controlNode.js";
import { controlNodeFirewallRules, workerFirewallRules } from "./firewall.js";
import { loadEnvironmentConfig } from "./stackConfig.js";
import { scalerApiToken, type ControlNodeSecrets } from "./templates.js";

export interface EnvironmentOutputs {
  controlNodeAddress: pulumi.Output<string>;
  scaleliteUrl: string;
  grafanaUrl: string;
  scalerUrl: string;
  /** The admin token of the scaler's API and the confscale CLI (a secret output). */
  scalerApiToken: pulumi.Output<string>;
  fleetStack: string;
  /** Where workers go and which rules they carry; the scaler hands it to the fleet program. */
  workerPlacement: pulumi.Output<Placement>;
  workerFirewallRules: pulumi.Output<FirewallRule[]>;
  scalerCommit?: string;
}

function cloudCredentialsFromEnvironment(): Record<string, string> {
  const names = [
    "IONOS_TOKEN",
    "IONOS_USERNAME",
    "IONOS_PASSWORD",
    "DIGITALOCEAN_TOKEN",
    "OCI_TENANCY_OCID",
    "OCI_USER_OCID",
    "OCI_FINGERPRINT",
    "OCI_PRIVATE_KEY",
    "OCI_REGION",
  ];
  return Object.fromEntries(names.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name] as string]])));
}

/** Declares network, firewalls and the control node of one environment on its cloud. */
export function declareEnvironment(env: string, config: EnvironmentConfig, options: { repositoryRoot?: string } = {}): EnvironmentOutputs {
  const adapter = ADAPTERS[config.cloud];
  const deployScaler = config.deployScaler ?? true;
  if (deployScaler && (config.fleetBackendUrl === undefined || config.fleetPassphrase === undefined)) {
    throw new StackConfigError(env, [
      ...(config.fleetBackendUrl === undefined
        ? [
            {
              key: "confscale:fleetBackendUrl",
              message: "is required to deploy the scaler (pulumi config set --secret confscale:fleetBackendUrl s3://…)",
            },
          ]
        : []),
      ...(config.fleetPassphrase === undefined
        ? [
            {
              key: "confscale:fleetPassphrase",
              message: "is required to deploy the scaler (pulumi config set --secret confscale:fleetPassphrase …)",
            },
          ]
        : []),
    ]);
  }
  const controlRules = controlNodeFirewallRules(config.adminCidrs);
  let placement: pulumi.Output<Placement>;
  let machineRules: FirewallRule[] = [];
  let afterControlNode: (controlIp: pulumi.Output<string>) => void = () => undefined;
  switch (config.cloud) {
    case "ionos":
      placement = declareIonosNetwork(env, config.region, config.ionos?.endpoint, config.ionos?.pollIntervalMs);
      machineRules = controlRules;
      break;
    case "digitalocean": {
      const network = declareDigitalOceanNetwork(env, config.region, config.sshPublicKeys);
      placement = network.placement;
      declareDigitalOceanFirewall(`confscale-${env}-control`, network.controlNodeTag, controlRules);
      afterControlNode = (controlIp) =>
        void declareDigitalOceanFirewall(
          `confscale-${env}-worker`,
          network.workerTag,
          controlIp.apply((ip) => workerFirewallRules(config.adminCidrs, ip)),
        );
      break;
    }
    case "oci": {
      const settings = config.oci;
      if (settings === undefined) throw new StackConfigError(env, [{ key: "confscale:oci", message: "required when cloud is oci" }]);
      const network = declareOciNetwork(env, config.region, settings);
      placement = network.placement;
      declareOciSecurityRules(`${env}-control`, network.controlNodeNsgId, controlRules);
      // NSG rules need the control node's address for node-exporter, known only after it exists.
      afterControlNode = (controlIp) => {
        controlIp.apply((ip) => declareOciSecurityRules(`${env}-worker`, network.workerNsgId, workerFirewallRules(config.adminCidrs, ip)));
      };
      break;
    }
  }
  const secrets: pulumi.Output<ControlNodeSecrets> = pulumi.secret(
    pulumi.output({
      scaleliteSecret: config.scaleliteSecret,
      grafanaAdminPassword: config.grafanaAdminPassword,
      nodeExporterPassword: config.nodeExporterPassword,
      fleetBackendUrl: config.fleetBackendUrl ?? "",
      fleetPassphrase: config.fleetPassphrase ?? "",
      cloudCredentials: cloudCredentialsFromEnvironment(),
    }),
  );
  const controlNode = declareControlNode({
    env,
    config,
    adapter,
    placement,
    firewallRules: machineRules,
    secrets,
    ...(deployScaler && options.repositoryRoot !== undefined ? { repositoryRoot: options.repositoryRoot } : {}),
  });
  afterControlNode(controlNode.machine.publicIp);
  const base = `https://${config.domain}`;
  return {
    controlNodeAddress: controlNode.machine.publicIp,
    scaleliteUrl: `${base}/bigbluebutton/api`,
    grafanaUrl: `${base}/grafana/`,
    scalerUrl: `${base}/scaler`,
    scalerApiToken: pulumi.secret(scalerApiToken(config.scaleliteSecret)),
    fleetStack: `${env}-fleet`,
    workerPlacement: placement,
    workerFirewallRules: controlNode.machine.publicIp.apply((ip) => workerFirewallRules(config.adminCidrs, ip)),
    ...(controlNode.scalerCommit === undefined ? {} : { scalerCommit: controlNode.scalerCommit }),
  };
}

/**
 * The environment program: one stack per environment (stacks/Pulumi.<env>.yaml). A function, so the same program
 * runs as the project's `main` (infra/index.ts) and inline through the Automation API (`npm run preview`, tests).
 * Config is validated before any resource is declared: a bad stack fails `pulumi preview` with every problem listed.
 */
export function defineEnvironment(): Record<string, unknown> {
  const config = loadEnvironmentConfig();
  const environment = declareEnvironment(pulumi.getStack(), config, { repositoryRoot: fileURLToPath(new URL("..", import.meta.url)) });
  return {
    cloud: config.cloud,
    fleetStack: environment.fleetStack,
    controlNodeAddress: environment.controlNodeAddress,
    scaleliteUrl: environment.scaleliteUrl,
    grafanaUrl: environment.grafanaUrl,
    scalerUrl: environment.scalerUrl,
    scalerApiToken: environment.scalerApiToken,
    workerPlacement: environment.workerPlacement,
    workerFirewallRules: environment.workerFirewallRules,
    scalerCommit: environment.scalerCommit,
  };
}
