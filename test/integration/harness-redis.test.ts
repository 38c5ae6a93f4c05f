import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { eventually } from "./scaler-fixture.js";

const repo = fileURLToPath(new URL("../..", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the tests' redis-server", () => {
  it("ends with the process that started it, even when that process never stops it", async () => {
    // A test process that starts a server and exits without its stop(), as a worker that dies would.
    const script = `import { RedisServer } from "./test/harness/redis.ts";
const server = await RedisServer.start();
console.log(JSON.stringify({ pid: server.pid, dir: server.dir }));
process.exit(0);`;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repo,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code, stderr).toBe(0);
    const { pid, dir } = JSON.parse(stdout) as { pid: number; dir: string };
    try {
      await eventually(async () => !alive(pid), 10_000, `redis-server ${pid} to end with its parent`);
    } finally {
      if (alive(pid)) process.kill(pid, "SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
