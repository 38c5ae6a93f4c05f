import { copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectEnvironmentStack } from "../../infra/workspace.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

// A stack an operator got wrong in three places at once: a plaintext secret, min above max, a made-up time zone.
const brokenStack = `config:
  confscale:cloud: ionos
  confscale:region: de/fra
  confscale:domain: bbb.example.org
  confscale:adminCidrs: [198.51.100.0/24]
  confscale:sshPublicKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3Q test"]
  confscale:scaleliteSecret: this-one-was-set-without-the-secret-flag
  confscale:workers:
    min: 5
    max: 3
    baseline: 3
    defaultSize: {cores: 2, ramGb: 8}
    maxSize: {cores: 4, ramGb: 16}
    timeZone: Mars/Olympus_Mons
`;

describe("pulumi preview of an environment stack (real CLI, inline environment program)", () => {
  let sandbox: PulumiSandbox;

  beforeAll(async () => {
    sandbox = await createPulumiSandbox();
    await mkdir(join(sandbox.dir, "stacks"));
    // The project as an operator has it: Pulumi.yaml (its `main` must exist) and the stack files beside it.
    await copyFile(join(repo, "Pulumi.yaml"), join(sandbox.dir, "Pulumi.yaml"));
    await symlink(join(repo, "infra"), join(sandbox.dir, "infra"), "dir");
    await writeFile(join(sandbox.dir, "stacks", "Pulumi.broken.yaml"), brokenStack);
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  it("fails on bad config, listing every problem with its key, before anything is planned", async () => {
    const stack = await selectEnvironmentStack("broken", { workDir: sandbox.dir, envVars: sandbox.env });
    const failure = await stack.preview().then(
      () => undefined,
      (error: unknown) => error as Error,
    );
    expect(failure, "the preview succeeded").toBeDefined();
    const text = String(failure?.message);
    expect(text).toContain("StackConfigError");
    for (const key of [
      "confscale:scaleliteSecret: must be a Pulumi secret",
      "confscale:grafanaAdminPassword: is required",
      "confscale:nodeExporterPassword: is required",
      "confscale:workers.min: min (5) must not exceed max (3)",
      "confscale:workers.timeZone: expected an IANA time zone",
    ]) {
      expect(text).toContain(key);
    }
    expect(text).not.toContain("this-one-was-set-without-the-secret-flag");
  });
});
