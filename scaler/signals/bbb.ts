import { XMLParser } from "fast-xml-parser";
import { z } from "zod";
import { signedUrl, type ChecksumAlgorithm } from "./checksum.js";
import { requestText, SignalError, safeUrl } from "./http.js";

const count = z.coerce.number().int().min(0);
const meetingXml = z.object({
  meetingID: z.coerce.string(),
  createTime: z.coerce.number().optional(),
  running: z.union([z.boolean(), z.string()]).optional(),
  participantCount: count.default(0),
  listenerCount: count.default(0),
  voiceParticipantCount: count.default(0),
  videoCount: count.default(0),
  moderatorCount: count.default(0),
  isBreakout: z.union([z.boolean(), z.string()]).optional(),
});
const responseXml = z.object({
  response: z.object({
    returncode: z.enum(["SUCCESS", "FAILED"]),
    messageKey: z.string().optional(),
    message: z.string().optional(),
    // `<meetings/>` parses to "" and one meeting to an object, not a list.
    meetings: z.union([z.literal(""), z.object({ meeting: z.union([meetingXml, z.array(meetingXml)]).optional() })]).optional(),
  }),
});

export interface BbbMeeting {
  meetingId: string;
  createdAt: number | null;
  running: boolean;
  participants: number;
  listeners: number;
  videos: number;
  isBreakout: boolean;
}

export interface BbbLoad {
  meetings: number;
  participants: number;
  videos: number;
  listeners: number;
  /** The createTime of the youngest meeting (ms since epoch); null when there is none or none says. */
  newestCreatedAt: number | null;
  list: BbbMeeting[];
}

export interface BbbClientOptions {
  /** The server's API base, e.g. https://bbb1.example.org/bigbluebutton/api */
  baseUrl: string;
  secret: string;
  timeoutMs?: number;
  /** sha256 by default (BBB 2.5+); sha1 for older servers. */
  algorithm?: ChecksumAlgorithm;
}

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: true });

function truthy(value: boolean | string | undefined): boolean {
  return value === true || value === "true";
}

/** BigBlueButton's `getMeetings` on one server: its meetings and their participants, listeners and cameras. */
export class BbbClient {
  constructor(private readonly options: BbbClientOptions) {}

  async getMeetings(): Promise<BbbLoad> {
    const url = signedUrl(this.options.baseUrl, "getMeetings", {}, this.options.secret, this.options.algorithm ?? "sha256");
    const { status, body } = await requestText({ source: "bbb", url, timeoutMs: this.options.timeoutMs ?? 5_000 });
    let document: unknown;
    try {
      document = parser.parse(body, true);
    } catch (error) {
      throw new SignalError("the body is not XML", "bbb", safeUrl(url), status, { cause: error });
    }
    const parsed = responseXml.safeParse(document);
    if (!parsed.success) throw new SignalError(`unexpected answer: ${parsed.error.message.slice(0, 300)}`, "bbb", safeUrl(url), status);
    const response = parsed.data.response;
    if (response.returncode === "FAILED")
      throw new SignalError(`FAILED ${response.messageKey ?? ""}: ${response.message ?? ""}`, "bbb", safeUrl(url), status);
    const raw = response.meetings === undefined || response.meetings === "" ? [] : (response.meetings.meeting ?? []);
    const list = (Array.isArray(raw) ? raw : [raw]).map((meeting): BbbMeeting => ({
      meetingId: meeting.meetingID,
      createdAt: meeting.createTime ?? null,
      running: truthy(meeting.running),
      participants: meeting.participantCount,
      listeners: meeting.listenerCount,
      videos: meeting.videoCount,
      isBreakout: truthy(meeting.isBreakout),
    }));
    return {
      meetings: list.length,
      participants: list.reduce((sum, meeting) => sum + meeting.participants, 0),
      videos: list.reduce((sum, meeting) => sum + meeting.videos, 0),
      listeners: list.reduce((sum, meeting) => sum + meeting.listeners, 0),
      newestCreatedAt: list.reduce<number | null>(
        (newest, meeting) => (meeting.createdAt === null || (newest !== null && newest >= meeting.createdAt) ? newest : meeting.createdAt),
        null,
      ),
      list,
    };
  }
}
