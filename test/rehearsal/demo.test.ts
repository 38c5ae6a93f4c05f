import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Lab } from "./lab.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

/** `npm run demo` as npm runs it (Node with tsx's loader), with what a fresh shell has. */
function demo(args: string[]) {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/demo.ts", ...args], {
    cwd: repo,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe("npm run demo on the rehearsal lab", () => {
  it("says where each real process runs, and confscale status shows the workers scraped and checking in", async () => {
    const usable = await Lab.available();
    if (!usable.ok) throw new Error(usable.reason);
    // Six minutes of the school day at 12×: the baseline, then half a minute of load.
    const run = demo(["--until", "07:56"]);
    const code = await run.exited;
    const { stdout, stderr } = run.output();
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    // The control node's real processes, on its lab address (the one the cloud gave the environment's control server).
    const controlAddresses = ["scaler", "redis", "prometheus", "caddy"].map(
      (service) =>
        new RegExp(`^  ${service}\\s+on control (198\\.1[89]\\.\\d+\\.\\d+) \\(bbb\\.confscale\\.test\\)`, "m").exec(stdout)?.[1],
    );
    expect(controlAddresses[0], stdout).toBeDefined();
    expect(new Set(controlAddresses)).toEqual(new Set([controlAddresses[0]]));
    // Each worker a machine of its own, on a lab address, running node-exporter and the sidecar.
    const workers = [
      ...stdout.matchAll(
        /^worker (bbb-\d+) {2}(198\.1[89]\.\d+\.\d+) \(\1\.bbb\.confscale\.test\).*node-exporter :9100.*confscale-sidecar/gm,
      ),
    ];
    expect(workers.length).toBeGreaterThanOrEqual(2);
    expect(new Set(workers.map((match) => match[2])).size).toBe(workers.length);
    expect(workers.map((match) => match[2])).not.toContain(controlAddresses[0]);
    expect(stdout).toMatch(/: scraped by Prometheus over TLS, checking in, enabled in Scalelite$/m);
    // confscale status, run in the scaler's container: every running worker's readings fresh and its check-in recent.
    const [, table] = /confscale status \(in the scaler's container on control\):\n([\s\S]*?)\nreplaying /.exec(stdout) ?? [];
    expect(table, stdout).toBeDefined();
    expect(table).toMatch(/SERVER\s+CPU\s+MEMORY\s+CHECK-IN/);
    for (const [, name] of workers)
      expect(table).toMatch(new RegExp(`^\\s+${name}\\s+\\d+ % \\(fresh\\)\\s+\\d+ % \\(fresh\\)\\s+\\d+ s ago$`, "m"));
    expect(stdout).toMatch(/^done at 07:5\d: /m);
  }, 600_000);

  it("says why and falls back to loopback mode when it does not run on the lab; stopped mid-replay, it tears everything down", async () => {
    const run = demo(["--loopback"]);
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (/^replaying /m.test(run.output().stdout)) resolve();
      };
      run.child.stdout.on("data", check);
      void run.exited.then(() => reject(new Error(`the demo ended: ${run.output().stdout}${run.output().stderr}`)));
    });
    // What `timeout` or a service manager sends: the replay is running, its servers are torn down under it.
    run.child.kill("SIGTERM");
    const code = await run.exited;
    const { stdout, stderr } = run.output();
    expect(code, `${stdout}\n${stderr}`).toBe(143);
    expect(stdout).toMatch(/^the rehearsal lab cannot run here \(--loopback given\): running everything on loopback$/m);
    expect(stdout).toMatch(/^stopping: tearing down what the demo started …$/m);
    expect(stderr).not.toMatch(/demo failed/);
    // The last step of the teardown removes the demo's state: it ran to its end.
    const [, stateDir] = /^demo state in (\S+)$/m.exec(stdout) ?? [];
    expect(stateDir, stdout).toBeDefined();
    expect(existsSync(stateDir ?? "")).toBe(false);
  }, 180_000);
});
