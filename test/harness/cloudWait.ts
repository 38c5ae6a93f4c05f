import type { EmulatedCloud, EmulatedServer } from "../emulator/cloud.js";

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
