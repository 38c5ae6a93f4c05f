import { execFileSync } from "node:child_process";
import { existsSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { ubuntuOf, workerImageOf, type EnvironmentConfig } from "./config.js";
import { jitsiFleetName } from "./jitsi.js";
import { PROVIDERS } from "./clouds/index.js";
import type { CloudProvider, FirewallRule, Machine, Placement } from "./clouds/types.js";
import {
  CONTROL_NODE_SECRET_FILES,
  JITSI_UBUNTU,
  renderControlNodeSecretFiles,
  renderControlNodeUserData,
  renderScalerSettings,
  type ControlNodeSecrets,
  type ControlNodeTemplateValues,
} from "./templates.js";

export interface ControlNodeArgs {
  env: string;
  config: EnvironmentConfig;
  /** The cloud: its machine, images and SSH login. */
  provider: CloudProvider;
  /** Options of the machine itself (the cloud's explicit Pulumi provider, where it has one). */
  machineOptions?: pulumi.CustomResourceOptions;
  placement: pulumi.Input<Placement>;
  /** Rules bound to the machine itself (IONOS); empty where the cloud's firewall follows tags/NSGs. */
  firewallRules: pulumi.Input<FirewallRule[]>;
  secrets: pulumi.Output<ControlNodeSecrets>;
  /** Repository root whose HEAD commit is deployed as the scaler; absent: the scaler is not deployed. */
  repositoryRoot?: string;
}

export interface ControlNode {
  machine: Machine;
  /** The commit of this repository the scaler runs, when deployed. */
  scalerCommit?: string;
}

/**
 * The deployed commit and a gzip'd tar of its tracked files (`git archive`): exactly what is committed, nothing local.
 * One archive per commit in the temporary directory, reused by every preview and up of that commit.
 */
export function packRepository(repositoryRoot: string): { commit: string; archivePath: string } {
  const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repositoryRoot, encoding: "utf8" }).trim();
  const archivePath = join(tmpdir(), `confscale-scaler-${commit}.tar.gz`);
  if (!existsSync(archivePath)) {
    // Written under another name first, so a concurrent or interrupted run never leaves a half archive in place.
    const partial = `${archivePath}.${process.pid}.partial`;
    execFileSync("git", ["archive", "--format=tar.gz", "-o", partial, commit], { cwd: repositoryRoot });
    renameSync(partial, archivePath);
  }
  return { commit, archivePath };
}

/**
 * The scaler's settings file (scaler.yaml) the environment delivers to its control node, from the stack's config and
 * what the cloud made (the node's address, the workers' placement); the rehearsal (test/rehearsal) delivers the same.
 */
export function renderControlNodeScalerSettings(
  env: string,
  config: EnvironmentConfig,
  controlNodeIp: string,
  placement: Placement,
): string {
  return renderScalerSettings({
    env,
    domain: config.domain,
    placement,
    controlNodeIp,
    adminCidrs: config.adminCidrs,
    sshPublicKeys: config.sshPublicKeys,
    ...(config.workers === undefined ? {} : { workerImage: workerImageOf(config), policy: config.workers }),
    ...(config.scaler === undefined ? {} : { loop: config.scaler }),
    controlNodeCores: config.controlNode.cores,
    ...(config.jitsi === undefined
      ? {}
      : { jitsi: config.jitsi, jitsiImage: PROVIDERS[config.cloud].images(config[config.cloud] as never, JITSI_UBUNTU).worker }),
  });
}

/** What the control node's compose project runs for the environment: Scalelite with BBB workers, each Jitsi group's fleet. */
export function controlNodeTemplateValues(env: string, config: EnvironmentConfig): ControlNodeTemplateValues {
  return {
    env,
    domain: config.domain,
    fleetStack: `${env}-fleet`,
    bbb: config.workers !== undefined,
    jitsiFleets: (config.jitsi?.groups ?? []).map((group) => jitsiFleetName(group.name)),
  };
}

/**
 * The control node: one machine whose cloud-init prepares Docker and the compose project, then, over SSH,
 * its secrets (.env), the scaler's settings (its fleet) and the scaler's source at the deployed commit. The SSH
 * steps are keyed by what they carry, so a new commit or a rotated secret rebuilds and restarts just the scaler; Redis, PostgreSQL and
 * the fleet stack's state live on volumes and survive.
 */
export function declareControlNode(args: ControlNodeArgs, opts?: pulumi.ComponentResourceOptions): ControlNode {
  const name = `${args.env}-control`;
  const bbb = args.config.workers !== undefined;
  const images = args.provider.images(args.config[args.config.cloud], ubuntuOf(args.config));
  const machine = args.provider.declareMachine(
    {
      name,
      size: args.config.controlNode,
      image: images.control,
      userData: renderControlNodeUserData(controlNodeTemplateValues(args.env, args.config)),
      sshPublicKeys: args.config.sshPublicKeys,
      powerState: "running",
      ownership: { env: args.env, role: "control" },
      firewallRules: args.firewallRules,
    },
    args.placement,
    { ...opts, ...args.machineOptions },
  );
  if (args.repositoryRoot === undefined) return { machine };

  const connection: command.types.input.remote.ConnectionArgs = {
    host: machine.publicIp,
    user: args.provider.sshUser,
    // The operator's (or CD's) SSH agent holds the key: no private key in config or state.
    ...(process.env.SSH_AUTH_SOCK === undefined ? {} : { agentSocketPath: process.env.SSH_AUTH_SOCK }),
  };
  const sudo = connection.user === "root" ? "" : "sudo ";
  const dependsOn = [machine.resource];
  const secretFiles = args.secrets.apply((secrets) => renderControlNodeSecretFiles(secrets, { bbb }));
  const install = (path: string) => `${sudo}install -m 0600 /dev/stdin /opt/confscale/${path}`;
  // The scaler's env file first: the node waits for cloud-init and makes the directories once.
  const secretsStep = new command.remote.Command(
    `${name}-secrets`,
    {
      connection,
      create: `${sudo}cloud-init status --wait >/dev/null; ${sudo}install -d -m 0700 /opt/confscale/env /opt/confscale/secrets && ${install(CONTROL_NODE_SECRET_FILES.scaler)}`,
      stdin: secretFiles.scaler,
      triggers: [secretFiles.scaler],
    },
    { ...opts, dependsOn, additionalSecretOutputs: ["stdin"] },
  );
  // Scalelite and its PostgreSQL run only beside BigBlueButton workers.
  const otherSecretSteps = ([...(bbb ? (["scalelite", "postgres"] as const) : []), "grafana", "nodeExporterPassword"] as const).map(
    (file) => {
      // Prometheus runs as nobody in its container and reads its password file through a read-only bind mount.
      const mode = file === "nodeExporterPassword" ? ` && ${sudo}chmod 0644 /opt/confscale/${CONTROL_NODE_SECRET_FILES[file]}` : "";
      return new command.remote.Command(
        `${name}-secrets-${file}`,
        {
          connection,
          create: install(CONTROL_NODE_SECRET_FILES[file]) + mode,
          stdin: secretFiles.apply((files) => files[file] ?? ""),
          triggers: [secretFiles.apply((files) => files[file] ?? "")],
        },
        { ...opts, dependsOn: [secretsStep], additionalSecretOutputs: ["stdin"] },
      );
    },
  );
  const envFile = pulumi.secret(secretFiles.apply((files) => JSON.stringify(files)));
  // The fleet's template needs the node's own address, known only once the machine exists.
  const scalerSettings = pulumi
    .all([machine.publicIp, pulumi.output(args.placement)])
    .apply(([controlNodeIp, placement]) => renderControlNodeScalerSettings(args.env, args.config, controlNodeIp, placement));
  const settingsStep = new command.remote.Command(
    `${name}-scaler-settings`,
    {
      connection,
      create: `${sudo}install -m 0644 /dev/stdin /opt/confscale/scaler.yaml`,
      stdin: scalerSettings,
      triggers: [scalerSettings],
    },
    { ...opts, dependsOn: [secretsStep, ...otherSecretSteps] },
  );
  const { commit, archivePath } = packRepository(args.repositoryRoot);
  const upload = new command.remote.CopyFile(
    `${name}-scaler-source`,
    { connection, localPath: archivePath, remotePath: `/tmp/confscale-scaler-${commit}.tar.gz`, triggers: [commit] },
    { ...opts, dependsOn: [settingsStep] },
  );
  new command.remote.Command(
    `${name}-scaler`,
    {
      connection,
      create:
        `${sudo}sh -c 'set -e; rm -rf /opt/confscale/scaler.next; mkdir -p /opt/confscale/scaler.next; ` +
        `tar -xzf /tmp/confscale-scaler-${commit}.tar.gz -C /opt/confscale/scaler.next; ` +
        `rm -rf /opt/confscale/scaler; mv /opt/confscale/scaler.next /opt/confscale/scaler; ` +
        `echo ${commit} > /opt/confscale/scaler/COMMIT; systemctl start confscale.service; ` +
        `cd /opt/confscale && docker compose up -d --build --no-deps scaler && docker compose up -d'`,
      triggers: [commit, envFile, scalerSettings],
    },
    { ...opts, dependsOn: [upload] },
  );
  return { machine, scalerCommit: commit };
}
