import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { findOnPath } from "./process.js";

/** Where `npm run setup` builds the Go tools the checks need (actionlint, compose-check), beside the Pulumi CLI. */
export function toolsBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "confscale", "tools", "bin");
}

/** How each real consumer gets onto a machine, for the message of a check that cannot find it. */
const HOW_TO_GET: Record<string, string> = {
  "cloud-init": "Debian's cloud-init package",
  promtool: "Debian's prometheus package",
  caddy: "Debian's caddy package",
  shellcheck: "Debian's shellcheck package",
  "prometheus-node-exporter": "Debian's prometheus-node-exporter package",
  openssl: "Debian's openssl package",
  actionlint: "go install github.com/rhysd/actionlint/cmd/actionlint (built by setup into ~/.cache/confscale/tools/bin)",
  "compose-check": "go build ./scripts/compose-check (compose-go, built by setup into ~/.cache/confscale/tools/bin)",
};

/** The program that reads a rendered file; a check without it fails saying how to get it, never skips. */
export function realTool(name: string): string {
  const candidates = [join(toolsBinDir(), name), findOnPath(name), `/usr/bin/${name}`, `/usr/sbin/${name}`];
  for (const candidate of candidates) {
    if (candidate === undefined) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not installed: run \`npm run setup\` (it installs ${HOW_TO_GET[name] ?? name})`);
}

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a tool to its end; a non-zero exit is a result, not an exception, so a test can show what the tool said. */
export function runTool(name: string, args: readonly string[], options: { cwd?: string; input?: string } = {}): Promise<ToolResult> {
  const program = realTool(name);
  return new Promise((resolve, reject) => {
    const child = execFile(program, args, { cwd: options.cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== "number") {
        reject(error);
        return;
      }
      resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
