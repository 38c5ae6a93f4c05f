// The fleet program of a Jitsi group on every cloud, with Pulumi's mocks: each videobridge and recorder gets cloud-init
// that installs its component and the unmodified jitsi-autoscaler-sidecar, configured with the scaler's URL and that
// worker's own RS256 key, whose public half the fleet stack exports for the scaler's key server; and the firewall
// opens what the component serves.
import * as pulumi from "@pulumi/pulumi";
import { importPKCS8, importSPKI, jwtVerify, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CLOUD_NAMES, type CloudName } from "../../infra/clouds/index.js";
import { environmentConfigSchema } from "../../infra/config.js";
import { declareEnvironment } from "../../infra/environment.js";
import { defineFleet, type FleetSecrets, type FleetSpec } from "../../infra/fleet.js";
import type { JitsiComponent } from "../../infra/jitsi.js";
import { newJitsiSidecarKeyPair, parseJitsiWorkerKeyId, type JitsiSidecarKeyPair } from "../../infra/workerCredentials.js";

interface Declared {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

const declared: Declared[] = [];
/** The key pair the engine would have generated for each sidecar key resource, by resource name. */
const generated = new Map<string, JitsiSidecarKeyPair>();
const CONTROL_IP = "198.51.100.30";

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        declared.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        // The dynamic provider's create() runs in the engine, not under mocks: stand in for it with a real key pair.
        const key = args.type.endsWith("JitsiSidecarKey") ? newJitsiSidecarKeyPair() : undefined;
        if (key !== undefined) generated.set(args.name, key);
        const state = { ...args.inputs, publicIp: CONTROL_IP, ipv4Address: CONTROL_IP, serverId: `${args.name}-id`, ...key };
        return { id: `${args.name}-id`, state };
      },
      call(args) {
        return args.inputs;
      },
    },
    "confscale",
    "jitsi-fleet",
    false,
  );
});

function value<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

async function registrationsSettled(): Promise<void> {
  // Exported by @pulumi/pulumi/runtime/settings.js (what `disconnect()` awaits) but left out of its typings.
  await (pulumi.runtime as unknown as { waitForRPCs: () => Promise<void> }).waitForRPCs();
}

const PLACEMENTS: Record<CloudName, FleetSpec["placement"]> = {
  ionos: { cloud: "ionos", region: "de/fra", ionos: { datacenterId: "dc-1", lanId: 1, endpoint: "http://127.0.0.1:9/cloudapi/v6" } },
  emulated: { cloud: "emulated", region: "de/fra", ionos: { datacenterId: "dc-1", lanId: 1, endpoint: "http://127.0.0.1:9/cloudapi/v6" } },
  digitalocean: {
    cloud: "digitalocean",
    region: "fra1",
    digitalocean: { vpcId: "vpc-1", workerTag: "confscale-j-worker", sshKeyIds: ["1"] },
  },
  oci: {
    cloud: "oci",
    region: "eu-frankfurt-1",
    oci: {
      subnetId: "ocid1.subnet.1",
      workerNsgId: "ocid1.nsg.worker",
      compartmentId: "ocid1.compartment.oc1..c",
      availabilityDomain: "AD-1",
      shape: "VM.Standard.E4.Flex",
    },
  },
};

const SECRETS: FleetSecrets = {
  nodeExporterPassword: "node-exporter-password",
  masterSecret: "fleet-master-secret-0123456789abcdef",
  jitsi: { jitsiJvbPassword: "jvb-xmpp-password", jitsiJibriPassword: "jibri-xmpp-password", jitsiRecorderPassword: "recorder-password" },
};
const SCALER_URL = "https://conf.example.org/scaler";

function jitsiSpec(cloud: CloudName, component: JitsiComponent): FleetSpec {
  const fleet = `jitsi-${cloud}-${component.toLowerCase()}`;
  return {
    env: "j",
    fleet,
    placement: PLACEMENTS[cloud],
    domain: "conf.example.org",
    scalerUrl: SCALER_URL,
    controlNodeIp: CONTROL_IP,
    adminCidrs: ["203.0.113.0/24"],
    sshPublicKeys: ["ssh-ed25519 AAAA admin"],
    workload: {
      kind: "jitsi",
      group: `${cloud}-${component.toLowerCase()}`,
      component,
      signaling: { xmppDomain: "meet.example.org", xmppHost: "meet.example.org", websocketProxyCidrs: ["203.0.113.7/32"] },
    },
    servers: [1, 2].map((n) => ({ name: `${fleet}-${n}`, size: { cores: 4, ramGb: 8 }, power: "running", image: "ubuntu-22-04-x64" })),
  };
}

/** The `#cloud-config` anywhere in a resource's inputs (plain, base64 as OCI takes it, or inside a secret). */
function userDataOf(inputs: unknown): { text: string; secret: boolean } | undefined {
  const visit = (node: unknown, secret: boolean): { text: string; secret: boolean } | undefined => {
    if (typeof node === "string") {
      if (node.startsWith("#cloud-config")) return { text: node, secret };
      const decoded = /^[A-Za-z0-9+/=]{40,}$/.test(node) ? Buffer.from(node, "base64").toString("utf8") : "";
      return decoded.startsWith("#cloud-config") ? { text: decoded, secret } : undefined;
    }
    if (node === null || typeof node !== "object") return undefined;
    const record = node as Record<string, unknown>;
    const isSecret = record[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;
    for (const child of Object.values(record)) {
      const found = visit(child, secret || isSecret);
      if (found !== undefined) return found;
    }
    return undefined;
  };
  return visit(inputs, false);
}

interface CloudConfig {
  write_files: { path: string; content: string; owner?: string; permissions?: string }[];
  runcmd: (string | string[])[];
}

function written(userData: string, path: string): string {
  const file = (parse(userData) as CloudConfig).write_files.find((entry) => entry.path === path);
  expect(file, path).toBeDefined();
  return file?.content ?? "";
}

function envFile(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split("\n")
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => {
        const [key, ...rest] = line.split("=");
        return [key, rest.join("=").replace(/^'(.*)'$/, "$1")];
      }),
  );
}

const CASES = CLOUD_NAMES.flatMap((cloud) => (["JVB", "jibri"] as const).map((component) => [cloud, component] as const));

describe.each(CASES)("a Jitsi group's workers on %s: %s", (cloud, component) => {
  const spec = jitsiSpec(cloud, component);
  let outputs: ReturnType<typeof defineFleet>;
  const machines = new Map<string, { text: string; secret: boolean }>();

  beforeAll(async () => {
    outputs = defineFleet(spec, SECRETS, {});
    for (const server of spec.servers) await value(outputs.servers[server.name]!.id);
    await registrationsSettled();
    for (const server of spec.servers) {
      const machine = declared.find((resource) => resource.name === server.name && userDataOf(resource.inputs) !== undefined);
      expect(machine, `the machine of ${server.name}`).toBeDefined();
      machines.set(server.name, userDataOf(machine?.inputs)!);
    }
  });

  it("installs the component and the unmodified sidecar from Jitsi's own repository", () => {
    for (const server of spec.servers) {
      const userData = machines.get(server.name)!.text;
      expect(written(userData, "/usr/local/sbin/confscale-add-jitsi-repository")).toContain("https://download.jitsi.org stable/");
      const install = written(userData, "/usr/local/sbin/confscale-install-jitsi-component");
      expect(install).toMatch(
        new RegExp(`apt-get install -y ${component === "JVB" ? "jitsi-videobridge2" : "jibri"} jitsi-autoscaler-sidecar`),
      );
      // The sidecar's unit reads confscale's environment file instead of the package's.
      expect(written(userData, "/etc/systemd/system/jitsi-autoscaler-sidecar.service.d/confscale.conf")).toMatch(
        /^EnvironmentFile=\nEnvironmentFile=\/etc\/confscale\/jitsi-sidecar\.env$/m,
      );
    }
  });

  it("configures each sidecar with the scaler's URL and its own key, whose public half the stack exports", async () => {
    const keyIds = new Set<string>();
    for (const server of spec.servers) {
      const userData = machines.get(server.name)!;
      // The user data carries a private key and XMPP passwords: it is a secret wherever it is kept.
      expect(userData.secret).toBe(true);
      const env = envFile(written(userData.text, "/etc/confscale/jitsi-sidecar.env"));
      expect(env).toMatchObject({
        AUTOSCALER_HOST_URL: SCALER_URL,
        POLLING_URL: `${SCALER_URL}/sidecar/poll`,
        STATUS_URL: `${SCALER_URL}/sidecar/status`,
        STATS_REPORT_URL: `${SCALER_URL}/sidecar/stats`,
        SHUTDOWN_URL: `${SCALER_URL}/sidecar/shutdown`,
        INSTANCE_ID: server.name,
        INSTANCE_TYPE: component,
        ASAP_SIGNING_KEY_FILE: "/etc/confscale/jitsi-sidecar-key.pem",
      });
      expect(JSON.parse(env.INSTANCE_METADATA ?? "{}")).toMatchObject({ group: spec.workload?.kind === "jitsi" && spec.workload.group });

      const exported = outputs.servers[server.name]!.sidecarKey!;
      const keyId = await value(exported.keyId);
      expect(env.ASAP_JWT_KID).toBe(keyId);
      expect(parseJitsiWorkerKeyId(keyId)).toMatchObject({ fleet: spec.fleet, server: server.name });
      keyIds.add(keyId);

      const privateKeyPem = written(userData.text, env.ASAP_SIGNING_KEY_FILE ?? "");
      expect(privateKeyPem).toBe(generated.get(`${server.name}-sidecar-key`)?.privateKeyPem);
      // A token as the sidecar signs it (RS256, its kid, iss and aud) verifies with the exported public key.
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "RS256", kid: keyId })
        .setIssuer(env.ASAP_JWT_ISS ?? "")
        .setAudience(env.ASAP_JWT_AUD ?? "")
        .setIssuedAt()
        .setExpirationTime("1h")
        .sign(await importPKCS8(privateKeyPem, "RS256"));
      const publicKey = await importSPKI(await value(exported.publicKeyPem), "RS256");
      await expect(
        jwtVerify(token, publicKey, { issuer: "jitsi-autoscaler-sidecar", audience: "jitsi-autoscaler" }),
      ).resolves.toBeDefined();
    }
    // Each worker its own key: one worker's key speaks for no other.
    expect(keyIds.size).toBe(spec.servers.length);
    const [first, second] = spec.servers.map((server) => written(machines.get(server.name)!.text, "/etc/confscale/jitsi-sidecar-key.pem"));
    expect(first).not.toBe(second);
  });

  it("joins the deployment's prosody with the component's XMPP accounts", () => {
    const userData = machines.get(spec.servers[0]!.name)!.text;
    if (component === "JVB") {
      const conf = written(userData, "/etc/jitsi/videobridge/jvb.conf");
      expect(conf).toContain('PASSWORD = "jvb-xmpp-password"');
      expect(conf).toContain('MUC_JIDS = "JvbBrewery@internal.auth.meet.example.org"');
      expect(conf).toContain(`MUC_NICKNAME = "${spec.servers[0]!.name}"`);
    } else {
      const conf = written(userData, "/etc/jitsi/jibri/jibri.conf");
      expect(conf).toMatch(/control-login \{[^}]*username = "jibri"\s+password = "jibri-xmpp-password"/);
      expect(conf).toMatch(/call-login \{[^}]*password = "recorder-password"/);
      expect(conf).toContain('room-name = "JibriBrewery"');
    }
  });

  it("opens the component's ports on the machine where the cloud binds rules to it", () => {
    const server = declared.find((resource) => resource.name === spec.servers[0]!.name && Array.isArray(resource.inputs.firewallRules));
    if (cloud !== "ionos" && cloud !== "emulated") {
      // DigitalOcean and Oracle Cloud: the environment stack's worker firewall holds the rules (below).
      expect(server).toBeUndefined();
      return;
    }
    const rules = (server?.inputs.firewallRules as { protocol: string; fromPort: number; sourceCidrs: string[] }[]).map(
      (rule) => `${rule.protocol}/${rule.fromPort} ${rule.sourceCidrs.join(",")}`,
    );
    expect(rules).toContain(`tcp/9100 ${CONTROL_IP}/32`);
    expect(rules).toContain("tcp/22 203.0.113.0/24");
    if (component === "JVB") {
      expect(rules).toContain("udp/10000 0.0.0.0/0,::/0");
      expect(rules).toContain("tcp/9090 203.0.113.7/32");
    } else expect(rules.filter((rule) => rule.startsWith("udp/"))).toEqual([]);
    // Nothing of a BigBlueButton worker's: no https, no RTP range.
    expect(rules.some((rule) => rule.startsWith("tcp/443") || rule.startsWith("udp/16384"))).toBe(false);
  });
});

describe("the environment's worker firewall where the cloud keeps one for all workers", () => {
  const jitsi = {
    signaling: { xmppDomain: "meet.example.org", xmppHost: "meet.example.org" },
    groups: [
      {
        name: "bridges",
        type: "JVB",
        size: { cores: 4, ramGb: 8 },
        scaling: { minDesired: 1, maxDesired: 4, desiredCount: 1, scaleUpThreshold: 0.7, scaleDownThreshold: 0.3 },
      },
    ],
  };

  it.each(["digitalocean", "oci"] as const)("%s: opens UDP 10000 to everyone once the stack has a JVB group", async (cloud) => {
    const config = environmentConfigSchema.parse({
      cloud,
      region: cloud === "digitalocean" ? "fra1" : "eu-frankfurt-1",
      domain: "conf.example.org",
      adminCidrs: ["203.0.113.0/24"],
      sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA admin"],
      scaleliteSecret: "s".repeat(40),
      grafanaAdminPassword: "grafana-admin-pw-1",
      nodeExporterPassword: "node-exporter-pw-1",
      jitsiJvbPassword: "jvb-xmpp-password",
      deployScaler: false,
      workers: { min: 0, max: 4, baseline: 0, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
      jitsi,
      ...(cloud === "oci"
        ? {
            oci: {
              compartmentId: "ocid1.compartment.oc1..aaaa",
              availabilityDomain: "AD-1",
              imageId: "ocid1.image.oc1..bbbb",
              workerImageId: "ocid1.image.oc1..cccc",
            },
          }
        : {}),
    });
    const env = `jfw${cloud.slice(0, 2)}`;
    const outputs = declareEnvironment(env, config);
    await value(outputs.controlNodeAddress);
    await registrationsSettled();
    const openings =
      cloud === "digitalocean"
        ? declared
            .filter((resource) => resource.type === "digitalocean:index/firewall:Firewall" && resource.name.includes(`${env}-worker`))
            .flatMap((resource) => resource.inputs.inboundRules as { protocol: string; portRange: string; sourceAddresses: string[] }[])
            .flatMap((rule) => rule.sourceAddresses.map((source) => `${rule.protocol}/${rule.portRange} ${source}`))
        : declared
            .filter((resource) => resource.type === "oci:Core/networkSecurityGroupSecurityRule:NetworkSecurityGroupSecurityRule")
            .filter((resource) => resource.name.startsWith(`${env}-worker`) && resource.inputs.udpOptions !== undefined)
            .map((resource) => {
              const range = (resource.inputs.udpOptions as { destinationPortRange: { min: number; max: number } }).destinationPortRange;
              return `udp/${range.min === range.max ? range.min : `${range.min}-${range.max}`} ${resource.inputs.source as string}`;
            });
    expect(openings).toContain("udp/10000 0.0.0.0/0");
  });
});
