import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Real servers and the Pulumi engine are slow on a loaded 2-core box; waits are on events, never on sleeps.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: "forks",
    maxWorkers: 2,
    fileParallelism: true,
  },
});
