import { copyFile, mkdir, readFile, symlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Stack } from "@pulumi/pulumi/automation/index.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectEnvironmentStack } from "../../infra/workspace.js";
import { Emulator } from "../emulator/emulator.js";
import { createPulumiSandbox, type PulumiSandbox } from "../harness/pulumi.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

/** A firewall rule as the emulated IONOS API holds it on the NIC. */
interface ApiRule {
  protocol: string;
  portRangeStart: number;
  portRangeEnd: number;
  sourceIp?: string;
  ipVersion: string;
}

describe("pulumi preview --diff and up of the local environment stack against the emulated IONOS cloud (real CLI)", () => {
  let emulator: Emulator;
  let sandbox: PulumiSandbox;
  let stack: Stack;

  beforeAll(async () => {
    // No data center yet: the environment stack creates its own, as on an empty IONOS contract.
    emulator = await Emulator.start({ timings: { requestQueuedMs: 20, requestRunningMs: 100, bootMs: 300 }, datacenter: null });
    sandbox = await createPulumiSandbox();
    // The project as an operator has it, with a copy of the committed stack file: the test changes only the copy.
    await mkdir(join(sandbox.dir, "stacks"));
    await copyFile(join(repo, "Pulumi.yaml"), join(sandbox.dir, "Pulumi.yaml"));
    await copyFile(join(repo, "stacks", "Pulumi.local.yaml"), join(sandbox.dir, "stacks", "Pulumi.local.yaml"));
    await symlink(join(repo, "infra"), join(sandbox.dir, "infra"), "dir");
    stack = await selectEnvironmentStack("local", {
      workDir: sandbox.dir,
      envVars: {
        ...sandbox.env,
        PULUMI_CONFIG_PASSPHRASE: "confscale-local",
        IONOS_USERNAME: emulator.credentials.username,
        IONOS_PASSWORD: emulator.credentials.password,
      },
    });
    // The committed file names the emulator's usual port; this one listens wherever the OS put it.
    await stack.setConfig("confscale:ionos.endpoint", { value: emulator.cloudApiUrl }, true);
    await stack.setConfig("confscale:ionos.pollIntervalMs", { value: "20" }, true);
  });

  afterAll(async () => {
    await emulator?.stop();
    await sandbox?.cleanup();
  });

  it("previews the data center and control node with their diff, creates them, and a second preview shows no changes", async () => {
    const preview = await stack.preview({ diff: true });
    expect(preview.changeSummary).toEqual({ create: 3 });
    expect(preview.stdout).toContain("+ pulumi-nodejs:dynamic/confscale:IonosDatacenter: (create)");
    expect(preview.stdout).toContain("+ pulumi-nodejs:dynamic/confscale:IonosServer: (create)");
    expect(preview.stdout).toMatch(/name\s*: "local-control"/);
    for (const key of ["scaleliteSecret", "grafanaAdminPassword", "nodeExporterPassword"]) {
      const secret = (await stack.getConfig(`confscale:${key}`)).value;
      expect(preview.stdout, `the diff shows ${key}`).not.toContain(secret);
    }
    expect(emulator.cloud.datacenters.size, "a preview changed the cloud").toBe(0);

    const up = await stack.up();
    expect(up.summary.result).toBe("succeeded");
    expect(up.summary.resourceChanges).toEqual({ create: 3 });

    const [datacenter, ...otherDatacenters] = [...emulator.cloud.datacenters.values()];
    expect(otherDatacenters).toEqual([]);
    expect(datacenter).toMatchObject({ name: "confscale-local", location: "de/fra" });
    expect([...(datacenter?.lans.values() ?? [])].map((lan) => lan.properties.public)).toEqual([true]);

    const servers = [...emulator.cloud.servers.values()];
    expect(servers.map((server) => server.name)).toEqual(["local-control"]);
    const control = emulator.serverView(servers[0]!);
    expect(control).toMatchObject({ datacenterId: datacenter?.id, cores: 2, ram: 4 * 1024, vmState: "RUNNING" });
    expect(control.labels).toEqual({ "confscale:env": "local", "confscale:role": "control" });

    const nics = [...servers[0]!.nics.values()];
    expect(nics).toHaveLength(1);
    expect(nics[0]?.properties.firewallActive).toBe(true);
    const rules = [...(nics[0]?.firewallRules.values() ?? [])].map((rule) => rule.properties as unknown as ApiRule);
    const sources = (port: number) =>
      rules
        .filter((rule) => rule.protocol === "TCP" && rule.portRangeStart === port && rule.portRangeEnd === port)
        .map((rule) => rule.sourceIp ?? `any ${rule.ipVersion}`)
        .sort();
    expect(sources(22)).toEqual(["127.0.0.0/8"]);
    expect(sources(80)).toEqual(["any IPv4", "any IPv6"]);
    expect(sources(443)).toEqual(["any IPv4", "any IPv6"]);
    expect(rules.map((rule) => rule.portRangeStart).sort((a, b) => a - b)).toEqual([22, 80, 80, 443, 443]);

    const outputs = await stack.outputs();
    const address = control.ips[0];
    expect(address).toBeDefined();
    expect(outputs.controlNodeAddress?.value).toBe(address);
    expect(outputs.fleetStack?.value).toBe("local-fleet");
    expect(outputs.scaleliteUrl?.value).toBe("https://bbb.confscale.test/bigbluebutton/api");
    expect(outputs.grafanaUrl?.value).toBe("https://bbb.confscale.test/grafana/");
    expect(outputs.scalerUrl?.value).toBe("https://bbb.confscale.test/scaler");
    expect(outputs.scalerCommit?.value).toBeUndefined();
    expect(outputs.workerPlacement?.value).toEqual({
      cloud: "ionos",
      region: "de/fra",
      ionos: { datacenterId: datacenter?.id, lanId: 1, endpoint: emulator.cloudApiUrl, pollIntervalMs: 20 },
    });
    const workerRules = outputs.workerFirewallRules?.value as { fromPort: number; sourceCidrs: string[] }[];
    expect(workerRules.find((rule) => rule.fromPort === 9100)?.sourceCidrs).toEqual([`${address}/32`]);
    expect(workerRules.find((rule) => rule.fromPort === 22)?.sourceCidrs).toEqual(["127.0.0.0/8"]);

    const again = await stack.preview({ diff: true });
    expect(again.changeSummary).toEqual({ same: 3 });
    expect(emulator.cloud.servers.size).toBe(1);

    // The committed stack file still names the emulator's usual port: only the sandbox copy was pointed elsewhere.
    expect(await readFile(join(repo, "stacks", "Pulumi.local.yaml"), "utf8")).toContain("endpoint: http://127.0.0.1:8780/cloudapi/v6");
  });
});
