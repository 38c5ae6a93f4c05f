import { fileURLToPath } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { StackConfigError, type EnvironmentConfig } from "./config.js";
import { cloudCredentialsFrom, providerFor } from "./clouds/index.js";
import { declareControlNode } from "./controlNode.js";
import { controlNodeFirewallRules, environmentWorkerFirewallRules, jitsiFirewallNeeds } from "./firewall.js";
import { JITSI_SECRET_KEYS } from "./jitsi.js";
import { stackOutputs, type EnvironmentOutputs } from "./outputs.js";
import { loadEnvironmentConfig } from "./stackConfig.js";
import { scalerApiToken, type ControlNodeSecrets } from "./templates.js";

export type { EnvironmentOutputs };

/** Declares network, firewalls and the control node of one environment on its cloud. */
export function declareEnvironment(env: string, config: EnvironmentConfig, options: { repositoryRoot?: string } = {}): EnvironmentOutputs {
  const provider = providerFor(config.cloud);
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
  // The cloud's own Pulumi provider, where it takes the credentials as arguments (OCI), serves every resource below.
  const cloudProvider = provider.pulumiProvider(`${env}-${config.cloud}`, config.region, process.env);
  const opts: pulumi.CustomResourceOptions = cloudProvider === undefined ? {} : { provider: cloudProvider };
  const bbb = config.workers !== undefined;
  const workerRules = (controlNodeIp: string) =>
    environmentWorkerFirewallRules(config.adminCidrs, controlNodeIp, bbb, jitsiFirewallNeeds(config.jitsi));
  const network = provider.declareNetwork({
    env,
    region: config.region,
    settings: config[config.cloud],
    sshPublicKeys: config.sshPublicKeys,
    controlNodeRules: controlNodeFirewallRules(config.adminCidrs),
    workerRules: (controlNodeIp) => workerRules(controlNodeIp),
    opts,
  });
  const dnsZone = config.dnsZone;
  const placement = dnsZone === undefined ? network.placement : network.placement.apply((resolved) => ({ ...resolved, dnsZone }));
  const secrets: pulumi.Output<ControlNodeSecrets> = pulumi.secret(
    pulumi.output({
      scaleliteSecret: config.scaleliteSecret,
      grafanaAdminPassword: config.grafanaAdminPassword,
      nodeExporterPassword: config.nodeExporterPassword,
      fleetBackendUrl: config.fleetBackendUrl ?? "",
      fleetPassphrase: config.fleetPassphrase ?? "",
      cloudCredentials: cloudCredentialsFrom(process.env),
      jitsi: Object.fromEntries(JITSI_SECRET_KEYS.flatMap((key) => (config[key] === undefined ? [] : [[key, config[key]]]))),
    }),
  );
  const controlNode = declareControlNode({
    env,
    config,
    provider,
    machineOptions: opts,
    placement,
    firewallRules: network.controlNodeMachineRules,
    secrets,
    ...(deployScaler && options.repositoryRoot !== undefined ? { repositoryRoot: options.repositoryRoot } : {}),
  });
  network.afterControlNode(controlNode.machine);
  const base = `https://${config.domain}`;
  return {
    controlNodeAddress: controlNode.machine.publicIp,
    // A Jitsi-only environment runs no Scalelite.
    ...(bbb ? { scaleliteUrl: `${base}/bigbluebutton/api` } : {}),
    grafanaUrl: `${base}/grafana/`,
    scalerUrl: `${base}/scaler`,
    scalerApiToken: pulumi.secret(scalerApiToken(config.scaleliteSecret)),
    fleetStack: `${env}-fleet`,
    workerPlacement: placement,
    workerFirewallRules: controlNode.machine.publicIp.apply(workerRules),
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
  return stackOutputs(config, environment);
}
