import { afterAll, beforeAll } from "vitest";
import { Emulator, type EmulatorOptions } from "../emulator/emulator.js";
import { createPulumiSandbox, type PulumiSandbox } from "./pulumi.js";
import { RedisServer } from "./redis.js";

export interface EmulatedParts {
  emulator: Emulator;
  redis: RedisServer;
  sandbox: PulumiSandbox;
}

/**
 * The emulated cloud, a real Redis and a Pulumi sandbox for a file's tests. Called before the file's own hooks, they
 * start before its `beforeAll` and stop after its `afterAll` (vitest runs after-hooks in reverse), so whatever the file
 * opened on them is closed first.
 */
export function useEmulatedParts(emulator: EmulatorOptions): EmulatedParts {
  const parts = {} as EmulatedParts;
  beforeAll(async () => {
    parts.emulator = await Emulator.start(emulator);
    parts.redis = await RedisServer.start();
    parts.sandbox = await createPulumiSandbox();
  });
  afterAll(async () => {
    await parts.emulator?.stop();
    await parts.redis?.stop();
    await parts.sandbox?.cleanup();
  });
  return parts;
}
