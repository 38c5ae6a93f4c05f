import { Hono, type Context } from "hono";
import { verifyChecksum } from "./checksum.js";
import type { EmulatedCloud, EmulatedServer, Meeting } from "./cloud.js";

export const BBB_VERSION = "2.7.3";

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (char) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[char]!);
}

function xml(c: Context, body: string): Response {
  return c.body(`<?xml version="1.0" encoding="UTF-8"?>\n<response>${body}</response>`, 200, { "Content-Type": "text/xml; charset=utf-8" });
}

function failed(c: Context, messageKey: string, message: string): Response {
  return xml(c, `<returncode>FAILED</returncode><messageKey>${messageKey}</messageKey><message>${escapeXml(message)}</message>`);
}

function meetingXml(meeting: Meeting, now: number): string {
  const voice = meeting.participants - meeting.listenOnly;
  return (
    `<meeting><meetingName>${escapeXml(meeting.name)}</meetingName><meetingID>${escapeXml(meeting.meetingId)}</meetingID>` +
    `<internalMeetingID>${escapeXml(meeting.meetingId)}-${meeting.createTime}</internalMeetingID>` +
    `<createTime>${meeting.createTime}</createTime><createDate>${new Date(meeting.createTime).toUTCString()}</createDate>` +
    `<voiceBridge>70000</voiceBridge><dialNumber>613-555-1234</dialNumber><running>true</running>` +
    `<duration>0</duration><hasUserJoined>true</hasUserJoined><recording>false</recording><hasBeenForciblyEnded>false</hasBeenForciblyEnded>` +
    `<startTime>${meeting.createTime}</startTime><endTime>0</endTime>` +
    `<participantCount>${meeting.participants}</participantCount><listenerCount>${meeting.listenOnly}</listenerCount>` +
    `<voiceParticipantCount>${voice}</voiceParticipantCount><videoCount>${meeting.videos}</videoCount>` +
    `<maxUsers>0</maxUsers><moderatorCount>${meeting.moderators}</moderatorCount><attendees/><metadata/>` +
    `<isBreakout>false</isBreakout><elapsedSeconds>${Math.floor((now - meeting.createTime) / 1000)}</elapsedSeconds></meeting>`
  );
}

/**
 * The BigBlueButton API of each emulated server, under `/servers/<serverId>/bigbluebutton/api`. It answers
 * only once the server has booted; before that, or when stopped, a 503 stands for "unreachable".
 */
export function bbbApi(cloud: EmulatedCloud): Hono {
  const app = new Hono();

  const serving = (c: Context): EmulatedServer | Response => {
    const server = cloud.servers.get(c.req.param("server")!);
    if (server === undefined) return c.text("no such server", 404);
    if (!cloud.isServing(server)) return c.text("server is not up", 503);
    return server;
  };
  const rawQuery = (c: Context) => new URL(c.req.url).search.slice(1);

  app.get("/:server/bigbluebutton/api", (c) => {
    const server = serving(c);
    if (server instanceof Response) return server;
    return xml(
      c,
      `<returncode>SUCCESS</returncode><version>2.0</version><apiVersion>2.0</apiVersion><bbbVersion>${BBB_VERSION}</bbbVersion>`,
    );
  });

  app.get("/:server/bigbluebutton/api/:call", (c) => {
    const server = serving(c);
    if (server instanceof Response) return server;
    const call = c.req.param("call");
    if (!verifyChecksum(call, rawQuery(c), cloud.bbbSecretOf(server)))
      return failed(c, "checksumError", "You did not pass the checksum security check");
    const now = cloud.clock.now();
    switch (call) {
      case "getMeetings": {
        if (server.meetings.size === 0) {
          return xml(
            c,
            "<returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey><message>no meetings were found on this server</message>",
          );
        }
        const meetings = [...server.meetings.values()].map((meeting) => meetingXml(meeting, now)).join("");
        return xml(c, `<returncode>SUCCESS</returncode><meetings>${meetings}</meetings>`);
      }
      case "isMeetingRunning": {
        const running = server.meetings.has(c.req.query("meetingID") ?? "");
        return xml(c, `<returncode>SUCCESS</returncode><running>${running}</running>`);
      }
      case "end": {
        const meetingId = c.req.query("meetingID") ?? "";
        if (!server.meetings.has(meetingId)) return failed(c, "notFound", "We could not find a meeting with that meeting ID");
        cloud.endMeeting(server, meetingId);
        return xml(
          c,
          "<returncode>SUCCESS</returncode><messageKey>sentEndMeetingRequest</messageKey><message>A request to end the meeting was sent.</message>",
        );
      }
      default:
        return failed(c, "unsupportedRequest", "This request is not supported.");
    }
  });

  return app;
}
