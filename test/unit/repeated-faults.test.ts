import { Writable } from "node:stream";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { RepeatedFaults } from "../../scaler/log.js";

/** A logger whose lines are kept, parsed. */
function collectingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ base: undefined }, sink), lines };
}

describe("RepeatedFaults", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("logs the first of a kind at once and then one line per interval with how many more came", async () => {
    const { logger, lines } = collectingLogger();
    const faults = new RepeatedFaults(logger, 10_000);
    for (let n = 0; n < 5_000; n++) faults.warn("redis.unavailable", { path: "/sidecar/poll" }, "redis unavailable");
    faults.warn("metrics.unavailable", {}, "metrics unavailable");
    await vi.advanceTimersByTimeAsync(10_000);
    faults.warn("redis.unavailable", { path: "/sidecar/stats" }, "redis unavailable");
    await vi.advanceTimersByTimeAsync(10_000);
    // A quiet interval closes the window: the next fault is logged at once again.
    await vi.advanceTimersByTimeAsync(10_000);
    faults.warn("redis.unavailable", {}, "redis unavailable");

    expect(lines.map((line) => [line.event, line.repeated, line.msg])).toEqual([
      ["redis.unavailable", undefined, "redis unavailable"],
      ["metrics.unavailable", undefined, "metrics unavailable"],
      ["redis.unavailable", 4_999, "redis unavailable (4999 more in the last 10 s)"],
      ["redis.unavailable", 1, "redis unavailable (1 more in the last 10 s)"],
      ["redis.unavailable", undefined, "redis unavailable"],
    ]);
  });
});
