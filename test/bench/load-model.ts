import type { ServerSize } from "../../infra/config.js";

/**
 * How much CPU and memory BigBlueButton meetings take on one server. A rough model in the spirit of BBB's sizing
 * guidance (a 4-core / 16 GB server carries a few hundred users, cameras cost most because every stream is
 * forwarded to every viewer); the benchmarks compare policies against each other with it, not against a real fleet.
 */
export interface MeetingLoad {
  participants: number;
  videos: number;
  listenOnly: number;
}

export interface Demand {
  cores: number;
  ramGb: number;
}

/** An idle BBB server (FreeSWITCH, Kurento/mediasoup, Redis, nginx, the HTML5 client processes). */
export const IDLE_DEMAND: Demand = { cores: 0.08, ramGb: 2.5 };

/** Above this fraction of its cores or RAM a server is overloaded: audio breaks up, joins time out. */
export const OVERLOAD_UTILIZATION = 0.9;

export function meetingDemand(meeting: MeetingLoad): Demand {
  const talking = meeting.participants - meeting.listenOnly;
  const forwardedStreams = meeting.videos * meeting.participants;
  return {
    cores: 0.02 + 0.018 * talking + 0.006 * meeting.listenOnly + 0.0015 * forwardedStreams,
    ramGb: 0.12 + 0.025 * meeting.participants + 0.003 * forwardedStreams,
  };
}

export function serverDemand(meetings: Iterable<MeetingLoad>): Demand {
  let cores = IDLE_DEMAND.cores;
  let ramGb = IDLE_DEMAND.ramGb;
  for (const meeting of meetings) {
    const demand = meetingDemand(meeting);
    cores += demand.cores;
    ramGb += demand.ramGb;
  }
  return { cores, ramGb };
}

export function utilization(demand: Demand, size: ServerSize): { cpu: number; memory: number } {
  return { cpu: demand.cores / size.cores, memory: demand.ramGb / size.ramGb };
}

export function isOverloaded(demand: Demand, size: ServerSize): boolean {
  const { cpu, memory } = utilization(demand, size);
  return cpu > OVERLOAD_UTILIZATION || memory > OVERLOAD_UTILIZATION;
}
