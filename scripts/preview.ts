// `npm run preview -- <stack>`: `pulumi preview --diff` of an environment stack, the job a CI check posts on a
// pull request. The backend and passphrase come from the usual PULUMI_BACKEND_URL / PULUMI_CONFIG_PASSPHRASE
// (or PULUMI_ACCESS_TOKEN for Pulumi Cloud).
import { fileURLToPath } from "node:url";
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

const projectDir = fileURLToPath(new URL("..", import.meta.url));
const stack = await selectEnvironmentStack(stackName, { workDir: projectDir });
try {
  const result = await stack.preview({ diff: true, onOutput: (text) => process.stdout.write(text) });
  const changes = Object.entries(result.changeSummary).filter(([operation]) => operation !== "same");
  console.log(changes.length === 0 ? "no changes" : `changes: ${changes.map(([operation, count]) => `${count} ${operation}`).join(", ")}`);
} catch (error) {
  // The engine already printed the program's errors (e.g. every stack config problem) above.
  console.error(`preview of stack ${stackName} failed`);
  process.exitCode = 1;
  if (process.env.DEBUG) console.error(error);
}
