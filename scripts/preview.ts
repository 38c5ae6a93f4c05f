// `npm run preview -- <stack>`: `pulumi preview --diff` of an environment stack, the job a CI check posts on a
// pull request. The backend and passphrase come from the usual PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE
// (or PULUMI_ACCESS_TOKEN for Pulumi Cloud). A failed preview prints each problem on one line with its key and
// exits 1. It runs on a temporary copy of the project, so the engine never writes a tracked file (a new stack's
// `encryptionsalt:` lands in the copy).
import { copyFile, mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseEnvironmentConfig, StackConfigError, type ConfigProblem } from "../infra/config.js";
import { PulumiCliMissingError } from "../infra/toolchain.js";
import { selectEnvironmentStack } from "../infra/workspace.js";
import { parseCommandLine, UsageError } from "../scaler/commandLine.js";

const stackName = parseCommandLine(
  {
    name: "npm run preview",
    usage: `usage: npm run preview -- <stack>
  pulumi preview --diff of the environment stack whose config is stacks/Pulumi.<stack>.yaml.
  The backend and passphrase come from PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE (or PULUMI_ACCESS_TOKEN).`,
    flags: {},
    allowPositionals: true,
  },
  ({ positionals }) => {
    if (positionals.length !== 1) throw new UsageError("expected one stack name, e.g. npm run preview -- dev");
    return positionals[0] as string;
  },
);

/** What the engine said went wrong, as `key: message` problems: its `error:` lines, never its stack trace. */
function engineProblems(error: unknown): ConfigProblem[] {
  const text = error instanceof Error ? error.message : String(error);
  const messages = [...new Set([...text.matchAll(/^\s*error: (.+)$/gm)].map((match) => (match[1] ?? "").trim()))];
  if (messages.length === 0) messages.push(text.split("\n")[0] ?? "the engine failed");
  return messages.map((message) => {
    const key = keyOf(message);
    const hint =
      key === "PULUMI_BACKEND_URL" ? " (set PULUMI_BACKEND_URL to the stack's backend, or PULUMI_ACCESS_TOKEN for Pulumi Cloud)" : "";
    return { key, message: message + hint };
  });
}

function keyOf(message: string): string {
  if (/passphrase/i.test(message)) return "PULUMI_CONFIG_PASSPHRASE";
  if (/PULUMI_ACCESS_TOKEN|login|backend/i.test(message)) return "PULUMI_BACKEND_URL";
  return `stack ${stackName}`;
}

class PreviewProblems extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map((problem) => `${problem.key}: ${problem.message}`).join("\n"));
  }
}

/** A step whose failure is a list of problems; anything else it throws is the engine's and is summarized. */
async function step<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof PreviewProblems) throw error;
    if (error instanceof StackConfigError) throw new PreviewProblems(error.problems);
    if (error instanceof PulumiCliMissingError) throw new PreviewProblems([{ key: "pulumi", message: error.message }]);
    throw new PreviewProblems(engineProblems(error));
  }
}

async function preview(projectDir: string, copyDir: string): Promise<void> {
  const stackFile = join("stacks", `Pulumi.${stackName}.yaml`);
  if (!existsSync(join(projectDir, stackFile))) throw new PreviewProblems([{ key: stackFile, message: "no such stack file" }]);
  // The project as the engine needs it: Pulumi.yaml (its `main` must exist), the stack file, and node_modules for
  // the dynamic providers, which run from the program's directory.
  await mkdir(join(copyDir, "stacks"));
  await copyFile(join(projectDir, "Pulumi.yaml"), join(copyDir, "Pulumi.yaml"));
  await copyFile(join(projectDir, stackFile), join(copyDir, stackFile));
  await symlink(join(projectDir, "infra"), join(copyDir, "infra"), "dir");
  await symlink(join(projectDir, "node_modules"), join(copyDir, "node_modules"), "dir");

  const stack = await step(() => selectEnvironmentStack(stackName as string, { workDir: copyDir }));
  // Every config problem at once, before the engine plans anything; reading the config also checks the passphrase.
  const config = await step(() => stack.getAllConfig());
  const raw = Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value]));
  const secretKeys = new Set(Object.entries(config).flatMap(([key, entry]) => (entry.secret ? [key] : [])));
  await step(async () => parseEnvironmentConfig(stackName as string, raw, secretKeys));

  const result = await step(() => stack.preview({ diff: true, onOutput: (text) => process.stdout.write(text) }));
  const changes = Object.entries(result.changeSummary).filter(([operation]) => operation !== "same");
  console.log(changes.length === 0 ? "no changes" : `changes: ${changes.map(([operation, count]) => `${count} ${operation}`).join(", ")}`);
}

const projectDir = resolve(process.cwd());
const copyDir = await mkdtemp(join(tmpdir(), `confscale-preview-${stackName}-`));
try {
  await preview(projectDir, copyDir);
} catch (error) {
  const problems = error instanceof PreviewProblems ? error.problems : engineProblems(error);
  console.error(`preview of stack ${stackName} failed:`);
  for (const problem of problems) console.error(`${problem.key}: ${problem.message}`);
  process.exitCode = 1;
} finally {
  await rm(copyDir, { recursive: true, force: true });
}
