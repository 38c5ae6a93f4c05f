import { fileURLToPath } from "node:url";
import { DEFAULT_BBB_VERSION, parseEnvironmentConfig, type EnvironmentConfig } from "../../infra/config.js";
import { controlNodeTemplateValues, renderControlNodeScalerSettings } from "../../infra/controlNode.js";
import { JITSI_SECRET_KEYS, jitsiFleetName, type JitsiComponent } from "../../infra/jitsi.js";
import {
  controlNodeProjectFiles,
  nodeExporterPasswordHash,
  renderJitsiWorkerUserData,
  renderControlNodeSecretFiles,
  renderControlNodeUserData,
  renderWorkerUserData,
  type ControlNodeSecrets,
} from "../../infra/templates.js";
import { configMapFromStackFile } from "./stackFile.js";
import { jitsiWorkerKeyId, newJitsiSidecarKeyPair, workerCredentials, type JitsiSidecarKeyPair } from "../../infra/workerCredentials.js";

/** The sidecar key a worker's user data carries, as the fleet program derives it. */
function workerSidecarKey(fleet: string, server: string) {
  const { keyId, signingKeyPem } = workerCredentials("sidecar-test-master-secret-0123456789abcdef", fleet, server);
  return { sidecarKeyId: keyId, sidecarSigningKey: signingKeyPem };
}

/** The example environments whose files every real-consumer check covers. */
export const EXAMPLE_STACKS = ["dev", "do-example", "oci-example", "local", "jitsi-example"] as const;
/** The example environments without BigBlueButton workers: Jitsi groups only. */
export const JITSI_ONLY_STACKS = ["jitsi-only-example"] as const;

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
  jitsi: {
    jitsiJvbPassword: 'jvb "pass" \\ $HOME #1',
    jitsiJibriPassword: "jibri'pass ${X}",
    jitsiRecorderPassword: "rec}order{ = pass",
  },
};

/** One sidecar key pair for every rendered Jitsi worker: generating RSA keys is slow, and each test reads its own user data. */
let jitsiKeyPair: JitsiSidecarKeyPair | undefined;
export function testJitsiKeyPair(): JitsiSidecarKeyPair {
  jitsiKeyPair ??= newJitsiSidecarKeyPair();
  return jitsiKeyPair;
}

export interface StackFiles {
  config: EnvironmentConfig;
  /** The control node's cloud-init. */
  controlNodeUserData: string;
  /** Its compose project, relative to /opt/confscale: compose file, Caddyfile, prometheus.yml, Grafana files. */
  projectFiles: Record<string, string>;
  /** Its secret files, keyed as `renderControlNodeSecretFiles` names them. */
  secretFiles: ReturnType<typeof renderControlNodeSecretFiles>;
  scalerSettings: string;
  /** The cloud-init of one worker of the stack's BBB fleet; absent in a Jitsi-only stack. */
  workerUserData?: string;
  /** The cloud-init of one worker of each Jitsi group, by group name; empty without a `jitsi` block. */
  jitsiWorkerUserData: Record<string, { component: JitsiComponent; userData: string }>;
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
  if (raw["confscale:jitsi"] !== undefined) {
    for (const key of JITSI_SECRET_KEYS) {
      raw[`confscale:${key}`] = AWKWARD_SECRETS.jitsi?.[key] ?? "";
      secretKeys.add(`confscale:${key}`);
    }
  }
  const config = parseEnvironmentConfig(env, raw, secretKeys);
  const jitsiWorkerUserData: StackFiles["jitsiWorkerUserData"] = {};
  for (const group of config.jitsi?.groups ?? []) {
    const fleet = jitsiFleetName(group.name);
    const name = `${fleet}-1`;
    const pair = testJitsiKeyPair();
    jitsiWorkerUserData[group.name] = {
      component: group.type,
      userData: renderJitsiWorkerUserData({
        env,
        fleet,
        group: group.name,
        component: group.type,
        signaling: config.jitsi!.signaling,
        name,
        domain: config.domain,
        scalerUrl: `https://${config.domain}/scaler`,
        controlNodeIp: "198.51.100.10",
        nodeExporterPasswordHash: nodeExporterPasswordHash(AWKWARD_SECRETS.nodeExporterPassword),
        sidecarKeyId: jitsiWorkerKeyId(fleet, name, pair.publicKeyPem),
        sidecarSigningKey: pair.privateKeyPem,
        secrets: AWKWARD_SECRETS.jitsi ?? {},
        region: config.region,
        cloud: config.cloud,
      }),
    };
  }
  const templateValues = controlNodeTemplateValues(env, config);
  const bbb = config.workers !== undefined;
  return {
    config,
    controlNodeUserData: renderControlNodeUserData(templateValues),
    projectFiles: controlNodeProjectFiles(templateValues),
    secretFiles: renderControlNodeSecretFiles(config.jitsi === undefined ? { ...AWKWARD_SECRETS, jitsi: {} } : AWKWARD_SECRETS, { bbb }),
    scalerSettings: renderControlNodeScalerSettings(env, config, "198.51.100.10", {
      cloud: config.cloud,
      region: config.region,
    } as Parameters<typeof renderControlNodeScalerSettings>[3]),
    ...(bbb
      ? {
          workerUserData: renderWorkerUserData({
            env,
            fleet: "bbb",
            name: "bbb-1",
            domain: config.domain,
            scalerUrl: `https://${config.domain}/scaler`,
            controlNodeIp: "198.51.100.10",
            bbbVersion: config.workers?.bbbVersion ?? DEFAULT_BBB_VERSION,
            nodeExporterPasswordHash: nodeExporterPasswordHash(AWKWARD_SECRETS.nodeExporterPassword),
            bbbSecret: "f".repeat(64),
            ...workerSidecarKey("bbb", "bbb-1"),
          }),
        }
      : {}),
    jitsiWorkerUserData,
  };
}
