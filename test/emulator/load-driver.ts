import { z } from "zod";
import type { EmulatorClock } from "./clock.js";
import { NoServerAvailableError, type ScaleliteEmulator } from "./scalelite.js";

const timeOfDay = z
  .string()
  .regex(/^\d{2}:\d{2}:\d{2}$/)
  .transform((text) => {
    const [hours, minutes, seconds] = text.split(":").map(Number) as [number, number, number];
    return hours * 3600 + minutes * 60 + seconds;
  });

const traceRow = z.object({
  start_local: timeOfDay,
  duration_s: z.coerce.number().positive(),
  participants: z.coerce.number().int().nonnegative(),
  videos: z.coerce.number().int().nonnegative(),
  listen_only: z.coerce.number().int().nonnegative(),
  kind: z.string(),
});

export interface TraceMeeting {
  /** Seconds after local midnight. */
  startSecond: number;
  durationSeconds: number;
  participants: number;
  videos: number;
  listenOnly: number;
  kind: string;
}

/** Parses the meeting trace CSV (`start_local,duration_s,participants,videos,listen_only,kind`). */
export function parseTrace(csv: string): TraceMeeting[] {
  const [header, ...lines] = csv.trim().split(/\r?\n/);
  const columns = (header ?? "").split(",");
  return lines
    .filter((line) => line.trim() !== "")
    .map((line, index) => {
      const cells = line.split(",");
      const row = traceRow.safeParse(Object.fromEntries(columns.map((column, i) => [column, cells[i]])));
      if (!row.success) throw new Error(`trace line ${index + 2}: ${row.error.issues[0]?.message ?? "invalid"}`);
      return {
        startSecond: row.data.start_local,
        durationSeconds: row.data.duration_s,
        participants: row.data.participants,
        videos: row.data.videos,
        listenOnly: row.data.listen_only,
        kind: row.data.kind,
      };
    });
}

export const replayOptionsSchema = z.object({
  /** Trace seconds per emulated second: 60 plays an hour of the trace in a minute of emulated time. */
  compression: z.number().positive().default(1),
  /** Trace time (seconds after midnight) that maps to the start of the replay; default the first meeting. */
  fromSecond: z.number().nonnegative().optional(),
  /** Trace time at which to stop scheduling arrivals. */
  untilSecond: z.number().nonnegative().optional(),
});
export type ReplayOptions = z.input<typeof replayOptionsSchema>;

export interface LoadDriverStats {
  scheduled: number;
  placed: number;
  /** Arrivals that found no enabled, online server (a user would have seen an error). */
  rejected: number;
  participantsPlaced: number;
  participantsRejected: number;
}

/**
 * Replays a trace into the Scalelite emulator: each meeting arrives at its (compressed) start time,
 * is placed by Scalelite's rules and ends after its (compressed) duration, so the servers' CPU and
 * memory follow the meetings they host.
 */
export class LoadDriver {
  private cancels: (() => void)[] = [];
  stats: LoadDriverStats = { scheduled: 0, placed: 0, rejected: 0, participantsPlaced: 0, participantsRejected: 0 };

  constructor(
    private readonly clock: EmulatorClock,
    private readonly scalelite: ScaleliteEmulator,
  ) {}

  replay(trace: readonly TraceMeeting[], options: ReplayOptions = {}): void {
    const { compression, fromSecond, untilSecond } = replayOptionsSchema.parse(options);
    this.stop();
    this.stats = { scheduled: 0, placed: 0, rejected: 0, participantsPlaced: 0, participantsRejected: 0 };
    const origin = fromSecond ?? Math.min(...trace.map((meeting) => meeting.startSecond));
    const startedAt = this.clock.now();
    trace.forEach((meeting, index) => {
      if (meeting.startSecond < origin || (untilSecond !== undefined && meeting.startSecond > untilSecond)) return;
      this.stats.scheduled += 1;
      const arrival = startedAt + ((meeting.startSecond - origin) * 1000) / compression;
      this.cancels.push(this.clock.schedule(arrival, () => this.arrive(meeting, index, compression)));
    });
  }

  stop(): void {
    for (const cancel of this.cancels) cancel();
    this.cancels = [];
  }

  private arrive(meeting: TraceMeeting, index: number, compression: number): void {
    try {
      this.scalelite.placeMeeting({
        meetingId: `trace-${index}`,
        name: `${meeting.kind} ${index}`,
        participants: meeting.participants,
        videos: meeting.videos,
        listenOnly: meeting.listenOnly,
        durationMs: (meeting.durationSeconds * 1000) / compression,
      });
      this.stats.placed += 1;
      this.stats.participantsPlaced += meeting.participants;
    } catch (error) {
      if (!(error instanceof NoServerAvailableError)) throw error;
      this.stats.rejected += 1;
      this.stats.participantsRejected += meeting.participants;
    }
  }
}
