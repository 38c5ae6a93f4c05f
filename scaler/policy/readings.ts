import type { WorkerPolicy } from "../../infra/config.js";
import type { ServerSnapshot } from "./types.js";

/** Whether each of the server's named readings was read this period and has a value. */
export function isFresh(server: ServerSnapshot, ...keys: ("cpu" | "memory" | "meetings" | "participants")[]): boolean {
  return keys.every((key) => server[key].status === "fresh" && server[key].value !== null);
}

/** Booting, or booted or resized within the grace period: its metrics are still settling. */
export function inGrace(server: ServerSnapshot, policy: WorkerPolicy, now: number): boolean {
  const graceMs = policy.graceSeconds * 1000;
  return (
    server.power === "booting" ||
    (server.bootedAt !== null && now - server.bootedAt < graceMs) ||
    (server.resizedAt !== null && now - server.resizedAt < graceMs)
  );
}
