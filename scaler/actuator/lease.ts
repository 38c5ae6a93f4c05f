import type { Logger } from "../log.js";
import { FleetLeaseLostError, type FleetLease, type FleetLock } from "./lock.js";

/** What `hold()` found: the lease in force, and whether it was taken anew (the fleet's state must be read again). */
export interface HeldLease {
  lease: FleetLease;
  reacquired: boolean;
}

/**
 * The fleet lease, kept alive by a heartbeat. A renewal that fails for a moment (a Redis timeout) is retried at the
 * next beat; a lease found lost (expired, or taken by another holder), or not renewed for a whole TTL (it has expired
 * in Redis by then, whatever Redis says later), is given up cleanly, and the next period takes it again if nobody
 * else holds it. Writes stay fenced by the token: a stale holder's are refused in Redis; and the lease's `signal`
 * aborts, which stops the holder's `up` in flight (scaler/actuator/actuator.ts), so a late leader stops acting too.
 */
export class LeaseKeeper {
  private lease: FleetLease | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;
  private failedBeats = 0;
  private token: number | undefined;
  /** When the last renewal (or the acquisition) that succeeded was sent: the lease lasts a TTL from then at least. */
  private renewedAt = 0;
  private aborter = new AbortController();

  constructor(
    private readonly lock: FleetLock,
    private readonly fleet: string,
    private readonly owner: string,
    private readonly log: Logger,
  ) {}

  get ttlMs(): number {
    return this.lock.ttlMs;
  }

  /** The token of the last lease this process held, lost or not. */
  get lastToken(): number | undefined {
    return this.token;
  }

  /** The lease this process holds now, if any. */
  get current(): FleetLease | undefined {
    return this.lease;
  }

  /** Aborts when the lease held now is lost or released: whatever its holder started under it must stop. */
  get signal(): AbortSignal {
    return this.aborter.signal;
  }

  /**
   * Waits for the lease (a dead holder's expires within a TTL) and starts the heartbeat: as a standby, as long as
   * another holder lives (`maxWaitMs` Infinity), until `signal` aborts.
   */
  async acquireWhenFree(maxWaitMs: number, signal?: AbortSignal): Promise<FleetLease> {
    const started = performance.now();
    let lastHolder: string | undefined;
    let unavailable = false;
    const lease = await this.lock.acquireWhenFree(this.fleet, this.owner, {
      maxWaitMs,
      ...(signal === undefined ? {} : { signal }),
      onBusy: (holder) => {
        if (holder === lastHolder) return;
        lastHolder = holder;
        this.log.info({ event: "fleet.lease_wait", fleet: this.fleet, holder }, "standing by: another scaler holds the fleet lease");
      },
      onUnavailable: (error) => {
        if (unavailable) return;
        unavailable = true;
        this.log.warn(
          { event: "fleet.lease_wait_unavailable", fleet: this.fleet, err: messageOf(error) },
          "waiting for Redis to take the fleet lease",
        );
      },
    });
    this.keep(lease);
    this.log.info(
      {
        event: "fleet.lease_acquired",
        fleet: this.fleet,
        token: lease.token,
        waitedMs: Math.round(performance.now() - started),
        previous: lastHolder ?? null,
      },
      "fleet lease acquired",
    );
    return lease;
  }

  /**
   * At the start of a period: renews the lease held, or takes it again after it was lost. Throws FleetLockBusyError
   * when another holder has it, and whatever Redis throws when it cannot be reached; the next period tries again.
   */
  async hold(): Promise<HeldLease> {
    if (this.lease !== undefined) {
      try {
        const sent = performance.now();
        await this.lease.renew();
        this.renewedAt = sent;
        return { lease: this.lease, reacquired: false };
      } catch (error) {
        if (!(error instanceof FleetLeaseLostError)) throw error;
        this.stepDown(error);
      }
    }
    const lease = await this.lock.acquire(this.fleet, this.owner);
    this.keep(lease);
    this.log.warn({ event: "fleet.lease_reacquired", fleet: this.fleet, token: lease.token }, "fleet lease taken again after it was lost");
    return { lease, reacquired: true };
  }

  async release(): Promise<void> {
    this.stopBeating();
    const lease = this.lease;
    this.lease = undefined;
    this.aborter.abort(new Error(`fleet ${this.fleet}: lease released`));
    await lease?.release();
  }

  private keep(lease: FleetLease): void {
    this.lease = lease;
    this.token = lease.token;
    this.renewedAt = lease.acquiredAt;
    this.failedBeats = 0;
    if (this.aborter.signal.aborted) this.aborter = new AbortController();
    this.stopBeating();
    this.heartbeat = setInterval(() => void this.beat(lease), Math.max(100, this.lock.ttlMs / 3));
  }

  private async beat(lease: FleetLease): Promise<void> {
    // A renewal still waiting on Redis is not doubled by the next beat.
    if (this.beating || this.lease !== lease) return;
    this.beating = true;
    const sent = performance.now();
    try {
      await lease.renew();
      this.renewedAt = sent;
      if (this.failedBeats > 0)
        this.log.info(
          { event: "fleet.lease_renewed", fleet: this.fleet, token: lease.token, failedBeats: this.failedBeats },
          "fleet lease renewed again after failed renewals",
        );
      this.failedBeats = 0;
    } catch (error) {
      if (this.lease !== lease) return;
      if (error instanceof FleetLeaseLostError) {
        this.stepDown(error);
        return;
      }
      this.failedBeats += 1;
      // Unrenewed for a TTL, the lease has expired in Redis and another scaler may hold it: stop acting now.
      if (performance.now() - this.renewedAt >= this.lock.ttlMs) {
        this.stepDown(new FleetLeaseLostError(this.fleet, lease.token));
        return;
      }
      this.log.warn(
        {
          event: "fleet.lease_renewal_failed",
          fleet: this.fleet,
          token: lease.token,
          failedBeats: this.failedBeats,
          err: messageOf(error),
        },
        "fleet lease renewal failed; retried at the next beat",
      );
    } finally {
      this.beating = false;
    }
  }

  /** The lease expired or another holder took it: stop renewing; the next period takes it again if it is free. */
  private stepDown(error: FleetLeaseLostError): void {
    this.stopBeating();
    this.lease = undefined;
    this.aborter.abort(error);
    this.log.error(
      { event: "fleet.lease_lost", fleet: this.fleet, token: error.token },
      "fleet lease lost; stepping down until the next period takes it again",
    );
  }

  private stopBeating(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
