import { execFile } from "node:child_process";
import { copyFile, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

interface Run {
  code: number;
  output: string;
}

/** `npm run preview -- <stack>` as an operator runs it, in `cwd` (the project directory). */
function preview(stack: string, env: Record<string, string>, cwd = repo): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(repo, "scripts", "preview.ts"), stack],
      { cwd, env: { ...env, PATH: `${env.PATH}:${process.env.PATH ?? ""}` } },
      (error, stdout, stderr) => resolve({ code: typeof error?.code === "number" ? error.code : 0, output: stdout + stderr }),
    );
  });
}

function expectShortProblems(run: Run, lines: RegExp[]): void {
  expect(run.code, run.output).toBe(1);
  // One line per problem, `key: message`, and nothing of a stack trace.
  expect(run.output).not.toMatch(/^\s+at /m);
  expect(run.output).not.toContain("CommandError");
  for (const line of lines) expect(run.output).toMatch(line);
  expect(run.output.trim().split("\n").length, run.output).toBeLessThanOrEqual(lines.length + 1);
}

describe("npm run preview on a stack that cannot preview", () => {
  let sandbox: PulumiSandbox;
  beforeAll(async () => {
    sandbox = await createPulumiSandbox();
  });
  afterAll(async () => {
    await sandbox?.cleanup();
  });

  it("names each missing secret with its key and leaves the stack file as committed", async () => {
    const before = await readFile(join(repo, "stacks", "Pulumi.dev.yaml"), "utf8");
    try {
      const run = await preview("dev", sandbox.env);
      expectShortProblems(run, [
        /^confscale:scaleliteSecret: is required/m,
        /^confscale:grafanaAdminPassword: is required/m,
        /^confscale:nodeExporterPassword: is required/m,
      ]);
      // A first preview creates the stack; its encryption salt must not land in the tracked stack file.
      expect(await readFile(join(repo, "stacks", "Pulumi.dev.yaml"), "utf8")).toBe(before);
    } finally {
      await writeFile(join(repo, "stacks", "Pulumi.dev.yaml"), before);
    }
  });

  it("names every config problem of a broken stack with its key", async () => {
    const project = join(sandbox.dir, "project");
    await mkdir(join(project, "stacks"), { recursive: true });
    await copyFile(join(repo, "Pulumi.yaml"), join(project, "Pulumi.yaml"));
    await symlink(join(repo, "infra"), join(project, "infra"), "dir");
    await symlink(join(repo, "node_modules"), join(project, "node_modules"), "dir");
    const stackFile = (await readFile(join(repo, "stacks", "Pulumi.do-example.yaml"), "utf8"))
      .replace("min: 0", "min: 20")
      .replace(/defaultSize:\n(\s+)cores: 4/, "defaultSize:\n$1cores: 2");
    await writeFile(join(project, "stacks", "Pulumi.broken.yaml"), stackFile);
    const run = await preview("broken", sandbox.env, project);
    expectShortProblems(run, [
      /^confscale:workers\.min: min \(20\) must not exceed max \(12\)$/m,
      /^confscale:workers\.baseline: /m,
      /^confscale:workers\.defaultSize\.cores: .*bbb-install refuses/m,
      /^confscale:scaleliteSecret: is required/m,
      /^confscale:grafanaAdminPassword: is required/m,
      /^confscale:nodeExporterPassword: is required/m,
    ]);
  });

  it("says the passphrase is wrong, on one line", async () => {
    const run = await preview("local", { ...sandbox.env, PULUMI_CONFIG_PASSPHRASE: "not-the-local-passphrase" });
    expectShortProblems(run, [/^PULUMI_CONFIG_PASSPHRASE: .*incorrect passphrase/m]);
  });

  it("says there is no backend, on one line", async () => {
    const { PULUMI_BACKEND_URL: _unset, ...env } = sandbox.env;
    const run = await preview("dev", { ...env, HOME: join(sandbox.dir, "home") });
    expectShortProblems(run, [/^PULUMI_BACKEND_URL: .*PULUMI_ACCESS_TOKEN/m]);
  });
});
