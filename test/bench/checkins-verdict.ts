/**
 * How `checkins.ts` judges its runs against the target (>= 5,000 check-ins/s at p99 < 20 ms). Only answers with a
 * 2xx status count as served: a scaler that answers 401 or 503 quickly must not pass for a fast one.
 */
export const TARGET_RATE = 5_000;
export const TARGET_P99_MS = 20;

/** The part of autocannon's result a closed-loop run is judged on. */
export interface ClosedLoopResult {
  "2xx": number;
  /** Seconds the run took. */
  duration: number;
  latency: { p99: number };
}

/** A closed-loop run at one count of connections. */
export interface ClosedLoop<Result extends ClosedLoopResult = ClosedLoopResult> {
  connections: number;
  result: Result;
}

/** Check-ins answered with a 2xx per second of the run. */
export function servedPerSecond(result: ClosedLoopResult): number {
  return result.duration > 0 ? result["2xx"] / result.duration : 0;
}

/**
 * The closed loop decides: the most check-ins/s served at a p99 under the target by any count of connections (once
 * the scaler is kept busy, more connections only lengthen the queue each request waits in).
 */
export function closedLoopVerdict<Result extends ClosedLoopResult>(
  runs: readonly ClosedLoop<Result>[],
): { best: ClosedLoop<Result> | undefined; met: boolean } {
  let best: ClosedLoop<Result> | undefined;
  for (const run of runs) {
    if (run.result.latency.p99 >= TARGET_P99_MS) continue;
    if (best === undefined || servedPerSecond(run.result) > servedPerSecond(best.result)) best = run;
  }
  return { best, met: best !== undefined && servedPerSecond(best.result) >= TARGET_RATE };
}

/** The part of `vegeta report -type=json` a fixed-rate run is judged on (durations in ns). */
export interface FixedRateReport {
  latencies: { "99th": number };
  /** Requests sent per second of the attack. */
  rate: number;
  /** Share of the requests answered with a 2xx (vegeta's success ratio). */
  success: number;
}

/**
 * A fixed-rate run: `offered` check-ins/s were sent evenly; it served them if every one was answered with a 2xx, at a
 * p99 under the target. Served per second is vegeta's own send rate times its success ratio: vegeta's `throughput`
 * also divides by the wait for the last answers after the attack, so it reads a little under the rate served
 * (4,999.7/s for 5,000/s all answered) and must not be compared with the target.
 */
export function fixedRateVerdict(report: FixedRateReport, offered: number): { served: number; p99Ms: number; met: boolean } {
  const p99Ms = report.latencies["99th"] / 1e6;
  const served = report.rate * report.success;
  return { served, p99Ms, met: offered >= TARGET_RATE && report.success === 1 && p99Ms < TARGET_P99_MS };
}
