// The stack's `confscale:jitsi` block and its secrets, validated like the rest: every problem with its key.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { parseEnvironmentConfig, StackConfigError, type ConfigProblem } from "../../infra/config.js";
import { renderControlNodeSecretFiles, renderScalerSettings } from "../../infra/templates.js";
import { jitsiConfigSchema, jitsiSecretsFromEnv, jitsiSignalingDefaults } from "../../infra/jitsi.js";
import { configMapFromStackFile } from "../harness/stackFile.js";

const BASE_SECRETS = ["scaleliteSecret", "grafanaAdminPassword", "nodeExporterPassword"];
const JITSI_SECRETS = ["jitsiJvbPassword", "jitsiJibriPassword", "jitsiRecorderPassword"];

function jitsiExample(secrets: readonly string[], change?: (jitsi: { groups: Record<string, unknown>[] }) => void) {
  const { raw, secretKeys } = configMapFromStackFile(new URL("../../stacks/Pulumi.jitsi-example.yaml", import.meta.url).pathname);
  for (const key of secrets) {
    raw[`confscale:${key}`] = "x".repeat(40);
    secretKeys.add(`confscale:${key}`);
  }
  if (change !== undefined) {
    const jitsi = JSON.parse(raw["confscale:jitsi"] ?? "{}") as { groups: Record<string, unknown>[] };
    change(jitsi);
    raw["confscale:jitsi"] = JSON.stringify(jitsi);
  }
  return { raw, secretKeys };
}

function problems(raw: Record<string, string>, secretKeys: Set<string>): ConfigProblem[] {
  try {
    parseEnvironmentConfig("jitsi-example", raw, secretKeys);
  } catch (error) {
    expect(error).toBeInstanceOf(StackConfigError);
    return [...(error as StackConfigError).problems];
  }
  return [];
}

describe("the stack's Jitsi groups", () => {
  it("the jitsi-example stack is valid once its secrets, the XMPP passwords among them, are set", () => {
    const { raw, secretKeys } = jitsiExample([...BASE_SECRETS, ...JITSI_SECRETS]);
    const config = parseEnvironmentConfig("jitsi-example", raw, secretKeys);
    expect(config.jitsi?.groups.map((group) => group.type)).toEqual(["JVB", "jibri"]);
  });

  it("names each XMPP password a group's component needs, beside every other missing secret", () => {
    const { raw, secretKeys } = jitsiExample([]);
    const found = problems(raw, secretKeys);
    expect(found.map((problem) => problem.key).sort()).toEqual([...BASE_SECRETS, ...JITSI_SECRETS].map((key) => `confscale:${key}`).sort());
    expect(found.find((problem) => problem.key === "confscale:jitsiJvbPassword")?.message).toMatch(/jitsi\.groups\.0 \(JVB\).*--secret/);
  });

  it("refuses an XMPP password kept as plain config", () => {
    const { raw, secretKeys } = jitsiExample([...BASE_SECRETS, ...JITSI_SECRETS]);
    secretKeys.delete("confscale:jitsiJvbPassword");
    expect(problems(raw, secretKeys)).toEqual([
      { key: "confscale:jitsiJvbPassword", message: expect.stringMatching(/must be a Pulumi secret/) },
    ]);
  });

  it("checks jitsi-autoscaler's scaling rules with the key of each problem", () => {
    const { raw, secretKeys } = jitsiExample([...BASE_SECRETS, ...JITSI_SECRETS], (jitsi) => {
      const bridges = jitsi.groups[0] as { scaling: Record<string, number> };
      bridges.scaling.desiredCount = 11;
      bridges.scaling.scaleDownThreshold = 0.9;
      const recorders = jitsi.groups[1] as { scaling: Record<string, number>; name: string };
      recorders.scaling.minDesired = 7;
      recorders.scaling.scaleDownThreshold = 1;
      jitsi.groups.push({ ...jitsi.groups[0], name: "bridges" });
    });
    const found = problems(raw, secretKeys);
    expect(found.map((problem) => problem.key)).toEqual(
      expect.arrayContaining([
        "confscale:jitsi.groups.0.scaling.desiredCount",
        "confscale:jitsi.groups.0.scaling.scaleDownThreshold",
        "confscale:jitsi.groups.1.scaling.minDesired",
        "confscale:jitsi.groups.1.scaling.desiredCount",
        "confscale:jitsi.groups.1.scaling.scaleDownThreshold",
        "confscale:jitsi.groups.2.name",
      ]),
    );
    expect(found.find((problem) => problem.key === "confscale:jitsi.groups.1.scaling.scaleDownThreshold")?.message).toMatch(
      /above scaleUpThreshold.*available recorders/,
    );
  });

  it("fills the signaling names Jitsi's packages set up, and keeps an operator's own", () => {
    expect(jitsiSignalingDefaults({ xmppDomain: "meet.example.org", xmppHost: "xmpp.example.org" })).toMatchObject({
      xmppHostName: "xmpp.example.org",
      xmppPort: 5222,
      authDomain: "auth.meet.example.org",
      internalMucDomain: "internal.auth.meet.example.org",
      recorderDomain: "recorder.meet.example.org",
      jvbBrewery: "JvbBrewery",
      jibriBrewery: "JibriBrewery",
    });
    expect(
      jitsiSignalingDefaults({
        xmppDomain: "m.example.org",
        xmppHost: "m.example.org:5223",
        internalMucDomain: "internal-muc.m.example.org",
      }),
    ).toMatchObject({ xmppPort: 5223, internalMucDomain: "internal-muc.m.example.org" });
  });
});

describe("what the control node hands the scaler", () => {
  const { raw, secretKeys } = jitsiExample([...BASE_SECRETS, ...JITSI_SECRETS]);
  const config = parseEnvironmentConfig("jitsi-example", raw, secretKeys);

  it("scaler.yaml carries the jitsi block under `jitsi`, readable with the same schema, each group with its image", () => {
    const settings = parse(
      renderScalerSettings({
        env: "jitsi-example",
        domain: config.domain,
        placement: { cloud: config.cloud, region: config.region },
        controlNodeIp: "198.51.100.10",
        adminCidrs: config.adminCidrs,
        sshPublicKeys: config.sshPublicKeys,
        workerImage: "ubuntu-22-04-x64",
        policy: config.workers,
        controlNodeCores: 4,
        jitsi: config.jitsi!,
        jitsiImage: "ubuntu-22-04-x64",
      }),
    ) as { jitsi: unknown };
    const jitsi = jitsiConfigSchema.parse(settings.jitsi);
    expect(jitsi.groups.map((group) => [group.name, group.image])).toEqual([
      ["bridges", "ubuntu-22-04-x64"],
      ["recorders", "ubuntu-22-04-x64"],
    ]);
    expect(jitsi.signaling).toEqual(config.jitsi?.signaling);
  });

  it("the scaler's env file carries the XMPP passwords, which the fleet program reads back", () => {
    const files = renderControlNodeSecretFiles({
      scaleliteSecret: "s".repeat(40),
      grafanaAdminPassword: "g",
      nodeExporterPassword: "n",
      fleetBackendUrl: "file:///var/lib/confscale/state",
      fleetPassphrase: "p",
      cloudCredentials: {},
      jitsi: { jitsiJvbPassword: "jvb-pw", jitsiJibriPassword: "jibri-pw", jitsiRecorderPassword: "rec-pw" },
    });
    const env = Object.fromEntries(
      files.scaler
        .trim()
        .split("\n")
        .map((line) => line.split("=", 2) as [string, string]),
    );
    expect(jitsiSecretsFromEnv(env)).toEqual({
      jitsiJvbPassword: "jvb-pw",
      jitsiJibriPassword: "jibri-pw",
      jitsiRecorderPassword: "rec-pw",
    });
  });
});

describe("an environment of Jitsi groups only", () => {
  const stack = (name: string) => configMapFromStackFile(new URL(`../../stacks/Pulumi.${name}.yaml`, import.meta.url).pathname);

  /** The jitsi-only-example stack with its secrets set, and `raw` changed by `change`, read as `pulumi up` reads it. */
  function jitsiOnly(change?: (raw: Record<string, string>) => void) {
    const { raw, secretKeys } = stack("jitsi-only-example");
    for (const key of [...BASE_SECRETS, "jitsiJvbPassword"]) {
      raw[`confscale:${key}`] = "x".repeat(40);
      secretKeys.add(`confscale:${key}`);
    }
    change?.(raw);
    return parseEnvironmentConfig("jitsi-only-example", raw, secretKeys);
  }

  /** scaler.yaml as the control node of the jitsi-only-example stack gets it. */
  function jitsiOnlyScalerSettings(change?: (raw: Record<string, string>) => void): Record<string, unknown> {
    const config = jitsiOnly(change);
    return parse(
      renderScalerSettings({
        env: "jitsi-only-example",
        domain: config.domain,
        placement: { cloud: config.cloud, region: config.region },
        controlNodeIp: "198.51.100.10",
        adminCidrs: config.adminCidrs,
        sshPublicKeys: config.sshPublicKeys,
        controlNodeCores: 2,
        jitsi: config.jitsi!,
        jitsiImage: "ubuntu-22-04-x64",
        ...(config.scaler === undefined ? {} : { loop: config.scaler }),
      }),
    ) as Record<string, unknown>;
  }

  it("the jitsi-only-example stack, without BigBlueButton workers, is valid once its secrets are set", () => {
    const config = jitsiOnly();
    expect(config.workers).toBeUndefined();
    expect(config.jitsi?.groups.map((group) => group.type)).toEqual(["JVB"]);
  });

  it("a stack with neither BigBlueButton workers nor Jitsi groups is refused at confscale:workers, beside every other problem", () => {
    const { raw, secretKeys } = stack("jitsi-only-example");
    delete raw["confscale:jitsi"];
    const found = problems(raw, secretKeys);
    expect(found).toContainEqual({
      key: "confscale:workers",
      message: expect.stringMatching(/BigBlueButton workers, Jitsi groups .* or both/),
    });
    expect(found.map((problem) => problem.key)).toEqual(expect.arrayContaining(BASE_SECRETS.map((key) => `confscale:${key}`)));
  });

  it("scaler.yaml of a Jitsi-only environment has no BBB fleet and gives the groups' stacks their own section", () => {
    const settings = jitsiOnlyScalerSettings();
    expect(settings.fleet).toBeUndefined();
    expect(settings.jitsiFleet).toMatchObject({
      image: "ubuntu-22-04-x64",
      template: { env: "jitsi-only-example", domain: jitsiOnly().domain },
    });
  });

  it("a Jitsi-only scaler runs its groups' periods at the stack's confscale:scaler intervalSeconds", () => {
    const settings = jitsiOnlyScalerSettings((raw) => {
      raw["confscale:scaler"] = JSON.stringify({ intervalSeconds: 15 });
    }) as { jitsiFleet?: { intervalSeconds?: number } };
    expect(settings.jitsiFleet?.intervalSeconds).toBe(15);
  });
});
