import { execFile } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startUntilReady } from "../harness/process.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

/** The entry points behind `npm run <script>` and the `confscale` bin, run as npm runs them (Node with tsx's loader). */
const COMMANDS = {
  emulator: "test/emulator/main.ts",
  demo: "scripts/demo.ts",
  scaler: "scaler/main.ts",
  preview: "scripts/preview.ts",
  confscale: "scaler/cli.ts",
  "bench:fleet": "test/bench/fleet-up.ts",
  "bench:emulator": "test/bench/emulator-scale.ts",
} as const;
type CommandName = keyof typeof COMMANDS;

function run(
  command: CommandName,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--import", "tsx", join(repo, COMMANDS[command]), ...args],
      // Only what a fresh shell has: no settings leak in from the test's own environment.
      { cwd: repo, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root", ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, stdout, stderr }),
    );
  });
}

const lines = (text: string) => text.split("\n").filter((line) => line.trim() !== "");

describe("every command answers --help and refuses an unknown flag with one line", () => {
  const prefix: Record<CommandName, string> = {
    emulator: "npm run emulator: ",
    demo: "npm run demo: ",
    scaler: "npm run scaler: ",
    preview: "npm run preview: ",
    confscale: "confscale: ",
    "bench:fleet": "npm run bench:fleet: ",
    "bench:emulator": "npm run bench:emulator: ",
  };

  for (const command of Object.keys(COMMANDS) as CommandName[]) {
    it(`${command} --help prints its usage and exits 0`, async () => {
      const result = await run(command, ["--help"]);
      expect(result, result.stderr).toMatchObject({ code: 0, stderr: "" });
      expect(result.stdout).toMatch(/^usage: /im);
    });

    it(`${command} --no-such-flag exits 2 with one line naming the flag, no stack trace`, async () => {
      const result = await run(command, ["--no-such-flag"]);
      expect(result.code).toBe(2);
      expect(lines(result.stderr)).toEqual([expect.stringContaining(prefix[command])]);
      expect(result.stderr).toContain("--no-such-flag");
      expect(result.stdout).toBe("");
    });
  }

  it("a bad value is one line naming the flag", async () => {
    const demo = await run("demo", ["--speed", "fast"]);
    expect(demo.code).toBe(2);
    expect(lines(demo.stderr)).toEqual([expect.stringMatching(/^npm run demo: --speed: /)]);
    const emulator = await run("emulator", ["--port", "70000"]);
    expect(emulator.code).toBe(2);
    expect(lines(emulator.stderr)).toEqual([expect.stringMatching(/^npm run emulator: --port: /)]);
    const subcommand = await run("confscale", ["status", "--no-such-flag"]);
    expect(subcommand.code).toBe(2);
    expect(lines(subcommand.stderr)).toEqual(["confscale: unknown option '--no-such-flag' (see confscale --help)"]);
    const preview = await run("preview", []);
    expect(preview.code).toBe(2);
    expect(lines(preview.stderr)).toEqual([expect.stringMatching(/^npm run preview: expected one stack name/)]);
  });
});

describe("defaults an operator relies on", () => {
  it("the emulator listens on 127.0.0.1:8780, the port the README names", async () => {
    const emulator = await startUntilReady(process.execPath, ["--import", "tsx", join(repo, COMMANDS.emulator)], /emulator listening/, {
      cwd: repo,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/root" },
    });
    try {
      expect(emulator.output()).toContain('"url":"http://127.0.0.1:8780"');
      const response = await fetch("http://127.0.0.1:8780/_control/clock");
      expect(response.status).toBe(200);
    } finally {
      await emulator.stop();
    }
  });

  it("the scaler without settings names the variables to set", async () => {
    const result = await run("scaler", []);
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain("redis.url: required: set SCALER_REDIS_URL, or redis.url in the settings file named by SCALER_CONFIG");
    expect(output).toContain(
      "sidecar.keyBaseUrl: required: set SCALER_ASAP_KEY_BASE_URL, or sidecar.keyBaseUrl in the settings file named by SCALER_CONFIG",
    );
    expect(output).not.toContain("Invalid input");
  });
});
