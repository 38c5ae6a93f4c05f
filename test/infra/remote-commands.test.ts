// The shell the environment stack runs on the control node over SSH (@pulumi/command remote commands), handed to
// shellcheck like every other shell snippet the stack renders.
import * as pulumi from "@pulumi/pulumi";
import { beforeAll, describe, expect, it } from "vitest";
import { declareEnvironment } from "../../infra/environment.js";
import { runTool } from "../harness/realTools.js";
import { AWKWARD_SECRETS, renderStackFiles } from "../harness/stackFiles.js";

const commands: { name: string; create: string }[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        if (args.type === "command:remote:Command") commands.push({ name: args.name, create: String(args.inputs.create) });
        return { id: `${args.name}-id`, state: { ...args.inputs, publicIp: "198.51.100.10", ipv4Address: "198.51.100.10" } };
      },
      call(args) {
        return args.inputs;
      },
    },
    "confscale",
    "do-example",
    true,
  );
});

describe("the control node's remote commands", () => {
  it("pass shellcheck", async () => {
    const { config } = renderStackFiles("do-example");
    const outputs = declareEnvironment(
      "do-example",
      {
        ...config,
        deployScaler: true,
        fleetBackendUrl: AWKWARD_SECRETS.fleetBackendUrl,
        fleetPassphrase: AWKWARD_SECRETS.fleetPassphrase,
      },
      { repositoryRoot: process.cwd() },
    );
    await new Promise((resolve) => outputs.controlNodeAddress.apply(resolve));
    // Commands declared inside applies register on the next turns.
    for (let turn = 0; turn < 5 && !commands.some((command) => command.name.endsWith("-control-scaler")); turn++) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(commands.map((command) => command.name)).toEqual(
      expect.arrayContaining(["do-example-control-secrets", "do-example-control-scaler"]),
    );
    for (const command of commands) {
      const result = await runTool("shellcheck", ["--shell", "sh", "-"], { input: command.create });
      expect(result.code, `shellcheck of ${command.name}:\n${result.stdout}`).toBe(0);
    }
  });
});
