import { fileURLToPath } from "node:url";
import { parseEnvironmentConfig, workerImageOf, type EnvironmentConfig } from "../../infra/config.js";
import {
  controlNodeProjectFiles,
  nodeExporterPasswordHash,
  renderControlNodeSecretFiles,
  renderControlNodeUserData,
  renderScalerSettings,
  renderWorkerUserData,
  type ControlNodeSecrets,
} from "../../infra/templates.js";
import { configMapFromStackFile } from "./stackFile.js";

/** The example environments whose files every real-consumer check covers. */
export const EXAMPLE_STACKS = ["dev", "do-example", "oci-example", "local"] as const;

/**
 * Secrets as operators really pick them: characters compose's env-file parser would cut (` #`), expand (`$`,
 * `${...}`) or choke on (quotes), and a multi-line PEM key among the cloud credentials.
 */
export const AWKWARD_SECRETS: ControlNodeSecrets = {
  scaleliteSecret: "0123456789abcdef".repeat(4),
  grafanaAdminPassword: "pa$word #1 x",
  nodeExporterPassword: 'n0de\'exp ${HOME} "q" $$ \\n',
  fleetBackendUrl: "s3://confscale-state?endpoint=https://s3.example.org&region=eu-central-1",
  fleetPassphrase: "correct horse $battery #staple",
  cloudCredentials: {
    DIGITALOCEAN_TOKEN: "dop_v1_0123456789abcdef",
    OCI_PRIVATE_KEY:
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7 #x $y\n-----END PRIVATE KEY-----\n",
  },
};

export interface StackFiles {
  config: EnvironmentConfig;
  /** The control node's cloud-init. */
  controlNodeUserData: string;
  /** Its compose project, relative to /opt/confscale: compose file, Caddyfile, prometheus.yml, Grafana files. */
  projectFiles: Record<string, string>;
  /** Its secret files, keyed as `renderControlNodeSecretFiles` names them. */
  secretFiles: ReturnType<typeof renderControlNodeSecretFiles>;
  scalerSettings: string;
  /** The cloud-init of one worker of the stack's fleet. */
  workerUserData: string;
}

const STACKS_DIR = fileURLToPath(new URL("../../stacks/", import.meta.url));

/** Every file an example stack renders for its control node and workers, with `AWKWARD_SECRETS` filled in. */
export function renderStackFiles(env: string): StackFiles {
  const { raw, secretKeys } = configMapFromStackFile(`${STACKS_DIR}Pulumi.${env}.yaml`);
  // Example stacks carry no encrypted secrets: fill the ones an operator sets with `pulumi config set --secret`.
  for (const key of ["scaleliteSecret", "grafanaAdminPassword", "nodeExporterPassword"] as const) {
    raw[`confscale:${key}`] = AWKWARD_SECRETS[key];
    secretKeys.add(`confscale:${key}`);
  }
  const config = parseEnvironmentConfig(env, raw, secretKeys);
  const templateValues = { env, domain: config.domain, fleetStack: `${env}-fleet` };
  return {
    config,
    controlNodeUserData: renderControlNodeUserData(templateValues),
    projectFiles: controlNodeProjectFiles(templateValues),
    secretFiles: renderControlNodeSecretFiles(AWKWARD_SECRETS),
    scalerSettings: renderScalerSettings({
      env,
      domain: config.domain,
      placement: { cloud: config.cloud, region: config.region } as Parameters<typeof renderScalerSettings>[0]["placement"],
      controlNodeIp: "198.51.100.10",
      adminCidrs: config.adminCidrs,
      sshPublicKeys: config.sshPublicKeys,
      workerImage: workerImageOf(config),
      policy: config.workers,
      controlNodeCores: config.controlNode.cores,
    }),
    workerUserData: renderWorkerUserData({
      env,
      fleet: "bbb",
      name: "bbb-1",
      domain: config.domain,
      scalerUrl: `https://${config.domain}/scaler`,
      controlNodeIp: "198.51.100.10",
      bbbVersion: config.workers.bbbVersion,
      nodeExporterPasswordHash: nodeExporterPasswordHash(AWKWARD_SECRETS.nodeExporterPassword),
      bbbSecret: "f".repeat(64),
    }),
  };
}
