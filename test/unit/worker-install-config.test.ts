import { describe, expect, it } from "vitest";
import { parseEnvironmentConfig, StackConfigError, workerImageOf, type ConfigProblem } from "../../infra/config.js";
import { configMapFromStackFile } from "../harness/stackFile.js";

const SECRETS = ["confscale:scaleliteSecret", "confscale:grafanaAdminPassword", "confscale:nodeExporterPassword"];

function stack(name: string, change: (workers: Record<string, unknown>, raw: Record<string, string>) => void = () => {}) {
  const { raw, secretKeys } = configMapFromStackFile(new URL(`../../stacks/Pulumi.${name}.yaml`, import.meta.url).pathname);
  for (const key of SECRETS) {
    raw[key] = "x".repeat(40);
    secretKeys.add(key);
  }
  const workers = JSON.parse(raw["confscale:workers"] ?? "{}") as Record<string, unknown>;
  change(workers, raw);
  raw["confscale:workers"] = JSON.stringify(workers);
  return { raw, secretKeys };
}

function problems(name: string, change: Parameters<typeof stack>[1]): ConfigProblem[] {
  const { raw, secretKeys } = stack(name, change);
  try {
    parseEnvironmentConfig(name, raw, secretKeys);
  } catch (error) {
    expect(error).toBeInstanceOf(StackConfigError);
    return [...(error as StackConfigError).problems];
  }
  return [];
}

describe("workers bbb-install can set up", () => {
  it.each(["dev", "do-example", "oci-example", "local"])("the %s stack's workers have the cores and memory bbb-install needs", (name) => {
    expect(problems(name, () => {})).toEqual([]);
  });

  it("refuses workers with fewer than 4 cores, naming the key and why", () => {
    const found = problems("dev", (workers) => (workers.defaultSize = { cores: 2, ramGb: 8 }));
    expect(found).toEqual([
      { key: "confscale:workers.defaultSize.cores", message: expect.stringMatching(/at least 4 cores.*\(2 given\).*bbb-install refuses/) },
    ]);
  });

  it("refuses workers with less memory than bbb-install checks for", () => {
    const found = problems("do-example", (workers) => (workers.defaultSize = { cores: 4, ramGb: 2 }));
    expect(found.map((problem) => problem.key)).toEqual(["confscale:workers.defaultSize.ramGb"]);
  });

  it("installs BigBlueButton 3.0 on Ubuntu 22.04 by default and 2.7 on Ubuntu 20.04 when asked", () => {
    const { raw, secretKeys } = stack("do-example");
    const current = parseEnvironmentConfig("do-example", raw, secretKeys);
    expect(current.workers!.bbbVersion).toBe("3.0");
    expect(workerImageOf(current)).toBe("ubuntu-22-04-x64");
    const older = stack("dev", (workers) => (workers.bbbVersion = "2.7"));
    const config = parseEnvironmentConfig("dev", older.raw, older.secretKeys);
    expect(workerImageOf(config)).toBe("ubuntu:20.04");
  });

  it("refuses an image of the other Ubuntu release and a release bbb-install does not know", () => {
    const mismatched = problems(
      "do-example",
      (_workers, raw) => (raw["confscale:digitalocean"] = JSON.stringify({ workerImage: "ubuntu-20-04-x64" })),
    );
    expect(mismatched).toEqual([
      { key: "confscale:digitalocean.workerImage", message: expect.stringMatching(/3\.0 installs on Ubuntu 22\.04 only, not 20\.04/) },
    ]);
    const unknown = problems("dev", (workers) => (workers.bbbVersion = "2.6"));
    expect(unknown.map((problem) => problem.key)).toEqual(["confscale:workers.bbbVersion"]);
  });
});
