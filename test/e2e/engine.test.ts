import * as pulumi from "@pulumi/pulumi";
import { LocalWorkspace, type Stack } from "@pulumi/pulumi/automation/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pulumiCommand } from "../../infra/toolchain.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

// A dynamic provider small enough to read at a glance: it records its inputs as outputs.
// It captures nothing from the module, because Pulumi serializes it into the provider process.
const greetingProvider: pulumi.dynamic.ResourceProvider = {
  async create(inputs: { text: string }) {
    return { id: `greeting-${Math.random().toString(36).slice(2)}`, outs: { text: inputs.text, length: inputs.text.length } };
  },
  async diff(_id: string, olds: { text: string }, news: { text: string }) {
    return { changes: olds.text !== news.text };
  },
  async update(_id: string, _olds: { text: string }, news: { text: string }) {
    return { outs: { text: news.text, length: news.text.length } };
  },
};

class Greeting extends pulumi.dynamic.Resource {
  declare readonly text: pulumi.Output<string>;
  declare readonly length: pulumi.Output<number>;
  constructor(name: string, args: { text: pulumi.Input<string> }) {
    super(greetingProvider, name, { text: args.text, length: undefined }, undefined, "Greeting");
  }
}

async function program() {
  const greeting = new Greeting("greeting", { text: new pulumi.Config().require("text") });
  return { text: greeting.text, length: greeting.length };
}

describe("the Pulumi engine through the Automation API (real CLI, file:// backend)", () => {
  let sandbox: PulumiSandbox;
  let stack: Stack;

  beforeAll(async () => {
    sandbox = await createPulumiSandbox();
    stack = await LocalWorkspace.createOrSelectStack(
      { stackName: "engine", projectName: "confscale-engine-check", program },
      {
        pulumiCommand: await pulumiCommand(),
        envVars: sandbox.env,
        workDir: sandbox.dir,
        projectSettings: { name: "confscale-engine-check", runtime: "nodejs", backend: { url: sandbox.backendUrl } },
      },
    );
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  it("previews, creates, updates in place and destroys a dynamic-provider resource", async () => {
    await stack.setConfig("text", { value: "hello" });
    const firstPreview = await stack.preview();
    expect(firstPreview.changeSummary.create).toBe(2); // the stack itself and the greeting

    const created = await stack.up();
    expect(created.summary.result).toBe("succeeded");
    expect(created.outputs.text?.value).toBe("hello");
    expect(created.outputs.length?.value).toBe(5);

    await stack.setConfig("text", { value: "good morning" });
    const changePreview = await stack.preview({ diff: true });
    expect(changePreview.changeSummary.update).toBe(1);
    expect(changePreview.changeSummary.create ?? 0).toBe(0);
    expect(changePreview.changeSummary.delete ?? 0).toBe(0);

    const updated = await stack.up();
    expect(updated.summary.resourceChanges?.update).toBe(1);
    expect(updated.outputs.text?.value).toBe("good morning");
    expect(updated.outputs.length?.value).toBe(12);

    const destroyed = await stack.destroy();
    expect(destroyed.summary.result).toBe("succeeded");
    const state = await stack.exportStack();
    expect(state.deployment.resources ?? []).toEqual([]);
  });
});
