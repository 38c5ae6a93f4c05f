import { describe, expect, it } from "vitest";
import { parseEnvironmentConfig, StackConfigError } from "../../infra/config.js";
import { configMapFromStackFile } from "../harness/stackFile.js";

const SECRETS = ["confscale:scaleliteSecret", "confscale:grafanaAdminPassword", "confscale:nodeExporterPassword"];

function stackFile(name: string) {
  return configMapFromStackFile(new URL(`../../stacks/Pulumi.${name}.yaml`, import.meta.url).pathname);
}

/** The example stacks, with the secrets an operator sets before the first `pulumi up`. */
function withSecrets(name: string) {
  const { raw, secretKeys } = stackFile(name);
  for (const key of SECRETS) {
    raw[key] = "x".repeat(40);
    secretKeys.add(key);
  }
  return { raw, secretKeys };
}

function problemsOf(raw: Record<string, string>, secretKeys: Set<string>) {
  try {
    parseEnvironmentConfig("test", raw, secretKeys);
  } catch (error) {
    expect(error).toBeInstanceOf(StackConfigError);
    return (error as StackConfigError).problems;
  }
  throw new Error("the config was accepted");
}

function workers(raw: Record<string, string>): Record<string, unknown> {
  return JSON.parse(raw["confscale:workers"] ?? "{}") as Record<string, unknown>;
}

describe("example stacks", () => {
  it("the local stack is complete as committed, secrets included", () => {
    const { raw, secretKeys } = stackFile("local");
    const config = parseEnvironmentConfig("local", raw, secretKeys);
    expect(config.cloud).toBe("ionos");
    expect(config.ionos?.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:/);
    expect(config.workers!.windows[0]?.min).toBe(3);
    // No SSH server behind the emulator: the local stack must not try to deploy the scaler over SSH.
    expect(config.deployScaler).toBe(false);
  });

  it.each(["dev", "do-example", "oci-example"])("%s is valid once its secrets are set", (name) => {
    const { raw, secretKeys } = withSecrets(name);
    expect(() => parseEnvironmentConfig(name, raw, secretKeys)).not.toThrow();
  });

  it("an example without its secrets names each secret to set", () => {
    const { raw, secretKeys } = stackFile("dev");
    const problems = problemsOf(raw, secretKeys);
    expect(problems.map((problem) => problem.key).sort()).toEqual([...SECRETS].sort());
  });

  it("fills sane defaults for what a stack leaves out", () => {
    const { raw, secretKeys } = withSecrets("oci-example");
    const config = parseEnvironmentConfig("oci-example", raw, secretKeys);
    expect(config.workers!.thresholds.cpu.down).toBeLessThan(config.workers!.thresholds.cpu.up);
    expect(config.workers!.windows).toEqual([]);
  });
});

type Mutation = (raw: Record<string, string>, secretKeys: Set<string>) => void;

const badConfigs: [string, Mutation, string, RegExp][] = [
  ["an unknown cloud", (raw) => (raw["confscale:cloud"] = "aws"), "confscale:cloud", /ionos.*digitalocean.*oci/],
  [
    "min above max",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), min: 9, max: 8, baseline: 8 })),
    "confscale:workers.min",
    /must not exceed max/,
  ],
  [
    "a baseline outside [min, max]",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), baseline: 12 })),
    "confscale:workers.baseline",
    /within \[min, max\]/,
  ],
  [
    "a default size above the maximum size",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), defaultSize: { cores: 2, ramGb: 32 } })),
    "confscale:workers.defaultSize.ramGb",
    /must not exceed maxSize\.ramGb/,
  ],
  [
    "a plaintext secret",
    (_raw, secretKeys) => secretKeys.delete("confscale:scaleliteSecret"),
    "confscale:scaleliteSecret",
    /must be a Pulumi secret.*--secret/,
  ],
  ["a bad CIDR", (raw) => (raw["confscale:adminCidrs"] = JSON.stringify(["10.0.0.0/33"])), "confscale:adminCidrs.0", /CIDR/],
  [
    "a bad time zone",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), timeZone: "Europe/Atlantis" })),
    "confscale:workers.timeZone",
    /IANA time zone/,
  ],
  ["an unknown top-level key", (raw) => (raw["confscale:wokers"] = "{}"), "confscale:wokers", /unknown key/],
  [
    "an unknown nested key",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), maxsize: { cores: 8, ramGb: 32 } })),
    "confscale:workers.maxsize",
    /unknown key/,
  ],
  ["a missing region", (raw) => delete raw["confscale:region"], "confscale:region", /is required/],
  [
    "thresholds out of order",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), thresholds: { cpu: { up: 0.3, down: 0.6 } } })),
    "confscale:workers.thresholds.cpu.down",
    /below up/,
  ],
  [
    "a time-window minimum above max",
    (raw) =>
      (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), windows: [{ days: ["mon"], from: "08:00", to: "12:00", min: 20 }] })),
    "confscale:workers.windows.0.min",
    /must not exceed max/,
  ],
  [
    "a window that ends before it starts",
    (raw) =>
      (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), windows: [{ days: ["mon"], from: "14:00", to: "08:00", min: 1 }] })),
    "confscale:workers.windows.0.to",
    /earlier than to/,
  ],
  [
    "a count that is not a number",
    (raw) => (raw["confscale:workers"] = JSON.stringify({ ...workers(raw), max: "five" })),
    "confscale:workers.max",
    /number/,
  ],
  ["a short load-balancer secret", (raw) => (raw["confscale:scaleliteSecret"] = "short"), "confscale:scaleliteSecret", /at least 32/],
  [
    "an SSH key that is not one",
    (raw) => (raw["confscale:sshPublicKeys"] = JSON.stringify(["hunter2"])),
    "confscale:sshPublicKeys.0",
    /OpenSSH public key/,
  ],
  ["oci without its settings", (raw) => (raw["confscale:cloud"] = "oci"), "confscale:oci", /compartmentId/],
];

describe("bad stack config", () => {
  it.each(badConfigs)("rejects %s, naming the key", (_what, mutate, key, message) => {
    const { raw, secretKeys } = withSecrets("dev");
    mutate(raw, secretKeys);
    const problems = problemsOf(raw, secretKeys);
    const problem = problems.find((candidate) => candidate.key === key);
    expect(problem, `problems: ${JSON.stringify(problems)}`).toBeDefined();
    expect(problem?.message).toMatch(message);
  });

  it("lists every problem at once, each on its own line of the error", () => {
    const { raw, secretKeys } = withSecrets("dev");
    raw["confscale:cloud"] = "aws";
    delete raw["confscale:domain"];
    secretKeys.delete("confscale:grafanaAdminPassword");
    try {
      parseEnvironmentConfig("dev", raw, secretKeys);
      expect.unreachable("the config was accepted");
    } catch (error) {
      const message = (error as Error).message;
      expect(message).toMatch(/^stack dev: 3 problems in stacks\/Pulumi\.dev\.yaml/);
      for (const key of ["confscale:cloud", "confscale:domain", "confscale:grafanaAdminPassword"]) {
        expect(message).toContain(`  - ${key}: `);
      }
    }
  });

  it("ignores other namespaces (provider settings such as digitalocean:token)", () => {
    const { raw, secretKeys } = withSecrets("do-example");
    raw["digitalocean:token"] = "t".repeat(64);
    secretKeys.add("digitalocean:token");
    expect(() => parseEnvironmentConfig("do-example", raw, secretKeys)).not.toThrow();
  });
});
