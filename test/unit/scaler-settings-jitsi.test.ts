import { describe, expect, it } from "vitest";
import { SettingsError, parseSettings } from "../../scaler/settings.js";

const base = { redis: { url: "redis://127.0.0.1:6379" }, sidecar: { keyBaseUrl: "https://keys.example.org/asap" } };
const fleet = {
  template: {
    env: "prod",
    fleet: "bbb",
    placement: { cloud: "digitalocean", region: "fra1" },
    domain: "bbb.example.org",
    scalerUrl: "https://scaler.example.org",
    controlNodeIp: "10.0.0.2",
    adminCidrs: ["10.0.0.0/8"],
    sshPublicKeys: [],
  },
  image: "ubuntu-22-04-x64",
  policy: { min: 1, max: 4, baseline: 1, defaultSize: { cores: 4, ramGb: 8 }, maxSize: { cores: 8, ramGb: 16 } },
  scaleliteUrl: "https://scalelite.example.org/scalelite/api",
  prometheusUrl: "http://127.0.0.1:9090",
};
const group = (changes: Record<string, unknown> = {}) => ({
  name: "bridges",
  type: "JVB",
  size: { cores: 4, ramGb: 8 },
  scaling: { minDesired: 1, maxDesired: 10, desiredCount: 2, scaleUpThreshold: 0.6, scaleDownThreshold: 0.3 },
  ...changes,
});
const jitsi = (groups: unknown[]) => ({ signaling: { xmppDomain: "meet.example.org", xmppHost: "meet.example.org" }, groups });

function problems(raw: unknown): string[] {
  try {
    parseSettings(raw);
  } catch (error) {
    if (error instanceof SettingsError) return error.problems.map((problem) => `${problem.field}: ${problem.message}`);
    throw error;
  }
  return [];
}

describe("the scaler's Jitsi groups (scaler.yaml `jitsi`)", () => {
  it("reads the groups with jitsi-autoscaler's scaling defaults", () => {
    const settings = parseSettings({ ...base, fleet, jitsi: jitsi([group()]) });
    expect(settings.jitsi?.groups[0]).toMatchObject({
      name: "bridges",
      enableAutoScale: true,
      enableScheduler: false,
      gracefulShutdownSeconds: 3600,
      gracePeriodTTLSec: 480,
      scaling: { scaleUpQuantity: 1, scaleDownQuantity: 1, scalePeriod: 60, scaleUpPeriodsCount: 2, scaleDownPeriodsCount: 4 },
    });
  });

  it("names every problem with its key: no fleet section, a duplicate group, a wrong scaling value", () => {
    expect(problems({ ...base, jitsi: jitsi([group()]) })).toEqual([expect.stringMatching(/^jitsi: Jitsi groups need the fleet section/)]);
    expect(problems({ ...base, fleet, jitsi: jitsi([group(), group({ scaling: { ...group().scaling, scaleUpThreshold: -1 } })]) })).toEqual(
      expect.arrayContaining([expect.stringMatching(/^jitsi\.groups\.1\.scaling\.scaleUpThreshold: /)]),
    );
    expect(problems({ ...base, fleet, jitsi: jitsi([group(), group()]) })).toEqual(["jitsi.groups.1.name: duplicate group name bridges"]);
  });
});

describe("a scaler of Jitsi groups without a BBB fleet (scaler.yaml `jitsiFleet`)", () => {
  const { fleet: _name, ...template } = fleet.template;
  const jitsiFleet = { template, image: "ubuntu-22-04-x64" };

  it("reads the groups' placement and stack settings from jitsiFleet, with the fleet section's defaults", () => {
    const settings = parseSettings({ ...base, jitsi: jitsi([group()]), jitsiFleet });
    expect(settings.fleet).toBeUndefined();
    expect(settings.jitsiFleet).toMatchObject({
      template,
      intervalSeconds: 60,
      workDir: "/var/lib/confscale/fleet",
      buildTimeoutSeconds: 1800,
      leaseTtlSeconds: 60,
    });
  });

  it("names jitsiFleet without groups, and a fleet name or workload it does not take", () => {
    expect(problems({ ...base, jitsiFleet })).toEqual(["jitsi: required with jitsiFleet: the groups it runs"]);
    expect(problems({ ...base, jitsi: jitsi([group()]), jitsiFleet: { ...jitsiFleet, template: { ...template, fleet: "bbb" } } })).toEqual([
      "jitsiFleet.template.fleet: unknown setting",
    ]);
  });
});
