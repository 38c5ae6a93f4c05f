/**
 * The one clock of the emulator. Every delay (request queueing, boot, meeting durations, poller and
 * check-in periods) and every counter (CPU seconds, network bytes) reads this clock, so a test can run
 * an hour of a datacenter in milliseconds by advancing it instead of sleeping.
 *
 * Modes: `real` follows wall time multiplied by `scale` (1 = real time); `manual` stands still until
 * `advance()` is called. `advance()` works in both modes and fires due events in time order, each seeing
 * `now()` equal to its own due time, so integrated counters stay exact.
 */
export type ClockMode = { kind: "real"; scale: number } | { kind: "manual" };

interface ScheduledEvent {
  at: number;
  seq: number;
  run: () => void;
  cancelled: boolean;
}

export interface ClockSnapshot {
  now: number;
  mode: ClockMode;
  pendingEvents: number;
}

/** Longest delay Node accepts for one setTimeout. */
const MAX_TIMER_MS = 2_147_483_647;

export class EmulatorClock {
  private mode: ClockMode;
  /** Emulated time at `anchorReal`, for the real mode; the current time itself in manual mode. */
  private anchorEmulated: number;
  private anchorReal: number;
  /** While events run: the due time of the running event. */
  private pinned: number | undefined;
  private lastNow: number;
  private readonly events: ScheduledEvent[] = [];
  private nextSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(mode: ClockMode = { kind: "real", scale: 1 }, startAt: number = Date.now()) {
    this.mode = mode;
    this.anchorEmulated = startAt;
    this.anchorReal = performance.now();
    this.lastNow = startAt;
  }

  /** Emulated epoch milliseconds; never goes backwards. */
  now(): number {
    if (this.pinned !== undefined) return this.pinned;
    const computed =
      this.mode.kind === "manual" ? this.anchorEmulated : this.anchorEmulated + (performance.now() - this.anchorReal) * this.mode.scale;
    this.lastNow = Math.max(this.lastNow, computed);
    return this.lastNow;
  }

  snapshot(): ClockSnapshot {
    return { now: this.now(), mode: this.mode, pendingEvents: this.events.filter((event) => !event.cancelled).length };
  }

  /** Switches mode (e.g. to a faster scale) without a jump in emulated time. */
  setMode(mode: ClockMode): void {
    this.rebase();
    this.mode = mode;
    this.arm();
  }

  /** Runs `run` when emulated time reaches `at`; returns a cancel function. */
  schedule(at: number, run: () => void): () => void {
    const event: ScheduledEvent = { at, seq: this.nextSeq++, run, cancelled: false };
    insertSorted(this.events, event);
    this.arm();
    return () => {
      event.cancelled = true;
    };
  }

  after(delayMs: number, run: () => void): () => void {
    return this.schedule(this.now() + delayMs, run);
  }

  /** Moves emulated time forward by `ms`, firing every event that falls due on the way, in order. */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`cannot advance the clock by ${ms} ms`);
    const target = this.now() + ms;
    this.runUntil(target);
    this.rebase();
    this.anchorEmulated = Math.max(this.anchorEmulated, target);
    this.lastNow = Math.max(this.lastNow, target);
    this.arm();
  }

  /** Fires every event already due (called by each incoming request so lazy observers see a settled world). */
  runDue(): void {
    this.runUntil(this.now());
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.events.length = 0;
  }

  private runUntil(target: number): void {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const next = this.events[0];
        if (next === undefined || next.at > target) break;
        this.events.shift();
        if (next.cancelled) continue;
        this.pinned = Math.max(next.at, this.lastNow);
        this.lastNow = this.pinned;
        try {
          next.run();
        } finally {
          this.pinned = undefined;
        }
      }
    } finally {
      this.running = false;
    }
  }

  private rebase(): void {
    const now = this.now();
    this.anchorEmulated = now;
    this.anchorReal = performance.now();
  }

  /** In real mode, keeps one wall-clock timer set for the earliest pending event. */
  private arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped || this.mode.kind === "manual") return;
    while (this.events[0]?.cancelled) this.events.shift();
    const next = this.events[0];
    if (next === undefined) return;
    const delayReal = Math.min(MAX_TIMER_MS, Math.max(0, (next.at - this.now()) / this.mode.scale));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runDue();
    }, delayReal);
    this.timer.unref();
  }
}

function insertSorted(events: ScheduledEvent[], event: ScheduledEvent): void {
  let low = 0;
  let high = events.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const other = events[middle]!;
    if (other.at < event.at || (other.at === event.at && other.seq < event.seq)) low = middle + 1;
    else high = middle;
  }
  events.splice(low, 0, event);
}
