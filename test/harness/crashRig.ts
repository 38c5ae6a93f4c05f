import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import type { EmulatedCloud, EmulatedServer } from "../emulator/cloud.js";
import type { EmulatedParts } from "./emulatedParts.js";
import { killProcessesIn } from "./process.js";

const TSX = fileURLToPath(new URL("../../node_modules/.bin/tsx", import.meta.url));

/**
 * Runs `script` (a harness process taking its options as JSON) in a process group of its own and kills it with SIGKILL
 * once a server `match` accepts has reached the cloud, taking the engine and its plugin hosts along, as a container's
 * death would. Answers the process's output.
 */
export async function killScalerMidUpdate(
  parts: EmulatedParts,
  script: string,
  options: unknown,
  match: (server: EmulatedServer) => boolean = () => true,
): Promise<string> {
  const scaler = spawn(TSX, [script, JSON.stringify(options)], { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  scaler.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  scaler.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(scaler, "exit");
  await untilServerReachesCloud(parts.emulator.cloud, { exited, output: () => output }, match);
  process.kill(-scaler.pid!, "SIGKILL");
  await exited;
  // The engine's plugin hosts run in groups of their own; a dead container would have taken them along too.
  await killProcessesIn(parts.sandbox.dir);
  return output;
}

/**
 * Resolves once a server `match` accepts is in the emulated cloud: the update a scaler process runs has reached the
 * cloud. Fails with the process's output when it exits first or nothing arrives within `timeoutMs`.
 */
export function untilServerReachesCloud(
  cloud: EmulatedCloud,
  scaler: { exited: Promise<unknown>; output: () => string },
  match: (server: EmulatedServer) => boolean = () => true,
  timeoutMs = 300_000,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the update never reached the cloud:\n${scaler.output()}`)), timeoutMs);
    void scaler.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the scaler exited before its update reached the cloud:\n${scaler.output()}`));
    });
    void cloud.serverAdded(match).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
