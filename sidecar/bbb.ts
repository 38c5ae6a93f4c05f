import { createHash } from "node:crypto";

/** What the sidecar reports of a BBB server's meetings (REFERENCE §3, `getMeetings`). */
export interface BbbLoad {
  meetings: number;
  participants: number;
  /** Webcam streams. */
  videos: number;
  /** Listen-only participants. */
  listeners: number;
  /** Participants with a microphone. */
  voiceParticipants: number;
  moderators: number;
  /** Meetings being recorded. */
  recordings: number;
}

export class BbbApiError extends Error {
  constructor(
    readonly call: string,
    message: string,
  ) {
    super(`BBB ${call}: ${message}`);
    this.name = "BbbApiError";
  }
}

/** `<call>?<query>&checksum=sha256(call + query + secret)`, as BBB 2.5 and later verify it. */
export function signedUrl(apiUrl: string, call: string, query: string, secret: string): string {
  const checksum = createHash("sha256")
    .update(call + query + secret)
    .digest("hex");
  return `${apiUrl.replace(/\/+$/, "")}/${call}?${query === "" ? "" : `${query}&`}checksum=${checksum}`;
}

// The getMeetings answer is flat XML of known elements; the tags read here never nest in themselves.
function element(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(xml);
  return match?.[1]?.trim();
}

function count(xml: string, tag: string): number {
  const value = Number(element(xml, tag) ?? "0");
  return Number.isInteger(value) && value >= 0 ? value : 0;
}

/** Reads a `getMeetings` answer: a load, or a BbbApiError carrying BBB's messageKey and message. */
export function parseGetMeetings(xml: string): BbbLoad {
  const response = element(xml, "response");
  if (response === undefined) throw new BbbApiError("getMeetings", "the answer is not a BBB API response");
  const returncode = element(response, "returncode");
  if (returncode !== "SUCCESS") {
    throw new BbbApiError("getMeetings", `${element(response, "messageKey") ?? "FAILED"}: ${element(response, "message") ?? "no message"}`);
  }
  const load: BbbLoad = { meetings: 0, participants: 0, videos: 0, listeners: 0, voiceParticipants: 0, moderators: 0, recordings: 0 };
  for (const [, meeting = ""] of response.matchAll(/<meeting>([\s\S]*?)<\/meeting>/g)) {
    load.meetings += 1;
    load.participants += count(meeting, "participantCount");
    load.videos += count(meeting, "videoCount");
    load.listeners += count(meeting, "listenerCount");
    load.voiceParticipants += count(meeting, "voiceParticipantCount");
    load.moderators += count(meeting, "moderatorCount");
    if (element(meeting, "recording") === "true") load.recordings += 1;
  }
  return load;
}

/** The local BBB API's load, read with its own secret. */
export async function fetchBbbLoad(apiUrl: string, secret: string, timeoutMs = 10_000): Promise<BbbLoad> {
  const response = await fetch(signedUrl(apiUrl, "getMeetings", "", secret), { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new BbbApiError("getMeetings", `HTTP ${response.status}`);
  return parseGetMeetings(await response.text());
}
