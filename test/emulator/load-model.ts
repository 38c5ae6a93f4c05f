/**
 * How the meetings on a server turn into what node-exporter reports. Linear and documented so a test
 * can compute the expected values; the constants are rough figures of a BigBlueButton 2.7 server:
 *
 * - CPU busy cores = idleCores + perParticipant * participants + perVideo * videos
 *   + perVideoViewer * videos * participants (each camera is forwarded to every participant),
 *   capped at the server's cores. Busy time is split user 75 %, system 20 %, softirq 5 %, evenly over CPUs.
 * - Memory used = base + perParticipant * participants + perVideo * videos, capped at 98 % of RAM.
 * - Network: every participant sends audio, every camera sends video; the server sends each participant
 *   the audio mix plus every camera of its meeting.
 */
export const LOAD_MODEL = {
  cpu: { idleCores: 0.05, perParticipant: 0.01, perVideo: 0.04, perVideoViewer: 0.001 },
  memoryBytes: { base: 900 * 2 ** 20, perParticipant: 12 * 2 ** 20, perVideo: 25 * 2 ** 20, maxFraction: 0.98 },
  networkBytesPerSecond: { audio: 6_000, video: 60_000 },
  cpuSplit: { user: 0.75, system: 0.2, softirq: 0.05 },
} as const;

export interface MeetingLoad {
  participants: number;
  videos: number;
}

export interface ServerLoad {
  busyCores: number;
  /** Fraction of all CPU time that is busy, 0..1. */
  cpuUtilisation: number;
  memoryTotalBytes: number;
  memoryUsedBytes: number;
  receiveBytesPerSecond: number;
  transmitBytesPerSecond: number;
}

export function serverLoad(cores: number, ramMb: number, meetings: Iterable<MeetingLoad>): ServerLoad {
  let participants = 0;
  let videos = 0;
  let videoViews = 0;
  let receive = 0;
  let transmit = 0;
  for (const meeting of meetings) {
    participants += meeting.participants;
    videos += meeting.videos;
    videoViews += meeting.videos * meeting.participants;
    receive += meeting.participants * LOAD_MODEL.networkBytesPerSecond.audio + meeting.videos * LOAD_MODEL.networkBytesPerSecond.video;
    transmit += meeting.participants * (LOAD_MODEL.networkBytesPerSecond.audio + meeting.videos * LOAD_MODEL.networkBytesPerSecond.video);
  }
  const cpu = LOAD_MODEL.cpu;
  const busyCores = Math.min(
    cores,
    cpu.idleCores + cpu.perParticipant * participants + cpu.perVideo * videos + cpu.perVideoViewer * videoViews,
  );
  const memoryTotalBytes = ramMb * 2 ** 20;
  const memory = LOAD_MODEL.memoryBytes;
  const memoryUsedBytes = Math.min(
    memoryTotalBytes * memory.maxFraction,
    memory.base + memory.perParticipant * participants + memory.perVideo * videos,
  );
  return {
    busyCores,
    cpuUtilisation: busyCores / cores,
    memoryTotalBytes,
    memoryUsedBytes,
    receiveBytesPerSecond: receive,
    transmitBytesPerSecond: transmit,
  };
}
