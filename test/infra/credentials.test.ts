// The clouds' credential variables and plugins are named once, by the providers (infra/clouds/index.ts): whatever
// else passes or installs them must match the registry.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CLOUD_CREDENTIAL_VARIABLES, CLOUD_NAMES, CLOUD_VARIABLES, PROVIDERS, cloudCredentialsFrom } from "../../infra/clouds/index.js";

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
const CLOUD_PREFIX = /^(IONOS|DIGITALOCEAN|OCI)_/;

describe("cloud credentials, named once", () => {
  it("the preview workflow hands every registered credential variable to pulumi, and no other cloud variable", () => {
    const workflow = parse(read(".github/workflows/pulumi-preview.yml")) as {
      jobs: Record<string, { steps: { uses?: string; env?: Record<string, string> }[] }>;
    };
    const step = Object.values(workflow.jobs)
      .flatMap((job) => job.steps)
      .find((candidate) => candidate.uses?.startsWith("pulumi/actions"));
    const passed = Object.keys(step?.env ?? {}).filter((name) => CLOUD_PREFIX.test(name));
    expect(passed.sort()).toEqual([...CLOUD_CREDENTIAL_VARIABLES].sort());
    for (const name of passed) expect(step?.env?.[name]).toBe(`\${{ secrets.${name} }}`);
  });

  it("the README names every credential variable an operator must export", () => {
    const readme = read("README.md");
    for (const name of CLOUD_CREDENTIAL_VARIABLES) expect(readme, name).toContain(`\`${name}\``);
  });

  it("the scaler's image installs every provider plugin a registered cloud needs", () => {
    const dockerfile = read("files/scaler.Dockerfile");
    for (const cloud of CLOUD_NAMES)
      for (const plugin of PROVIDERS[cloud].plugins)
        expect(dockerfile).toMatch(
          new RegExp(`pulumi plugin install resource ${plugin.name} .*require\\('${plugin.npmPackage}/package\\.json'\\)`),
        );
  });

  it("hands on only the clouds' own variables that are set, credentials and API overrides alike", () => {
    const env = { IONOS_TOKEN: "t", OCI_PRIVATE_KEY: "k", DIGITALOCEAN_API_URL: "", HOME: "/root", OCI_API_URL: "http://127.0.0.1:1" };
    expect(cloudCredentialsFrom(env)).toEqual({ IONOS_TOKEN: "t", OCI_PRIVATE_KEY: "k", OCI_API_URL: "http://127.0.0.1:1" });
    for (const name of CLOUD_CREDENTIAL_VARIABLES) expect(CLOUD_VARIABLES).toContain(name);
  });
});
