import { IncomingMessage } from "node:http";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { jsonShapeProblem, type FieldProblem } from "./jsonShape.js";

export type { FieldProblem };

/** An HTTP answer other than success: `code` is stable for programs, `message` and `issues` are for people. */
export class HttpError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues: readonly FieldProblem[] = [],
  ) {
    super(message);
    this.name = "HttpError";
  }

  body(): { error: string; message: string; issues?: readonly FieldProblem[] } {
    return { error: this.code, message: this.message, ...(this.issues.length > 0 ? { issues: this.issues } : {}) };
  }
}

/** The client went away before its request was read: nobody is left to answer, and it is no fault of the server. */
export class ClientGoneError extends Error {
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = "ClientGoneError";
  }
}

/** The status a request whose client went away is counted with (nginx's "client closed request"); never sent. */
export const CLIENT_GONE_STATUS = 499;

export function invalid(issues: readonly FieldProblem[]): HttpError {
  const summary = issues
    .slice(0, 3)
    .map((issue) => `${issue.field}: ${issue.message}`)
    .join("; ");
  return new HttpError(400, "invalid_request", summary, issues);
}

/** Reads and validates a JSON body of at most `maxBytes`; any problem becomes a 4xx naming the field. */
export async function readJson<Schema extends z.ZodType>(c: Context, schema: Schema, maxBytes: number): Promise<z.infer<Schema>> {
  return parseWith(schema, await readJsonValue(c, maxBytes));
}

/** Reads a JSON body of at most `maxBytes`, not yet validated: the caller picks the schema by what it holds. */
export async function readJsonValue(c: Context, maxBytes: number): Promise<unknown> {
  return parseJsonBody(await readBody(c, maxBytes));
}

/**
 * A request body's JSON, not yet validated; an empty or broken body is a 400 naming `body`, one nested too deep or
 * with too many or too long members (`JSON_LIMITS`) a 400 naming the field.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === "") throw invalid([{ field: "body", message: "expected a JSON body" }]);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid([{ field: "body", message: "body is not valid JSON" }]);
  }
  const problem = jsonShapeProblem(value);
  if (problem !== undefined) throw invalid([problem]);
  return value;
}

function nodeRequest(c: Context): IncomingMessage | undefined {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  return incoming instanceof IncomingMessage ? incoming : undefined;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "payload_too_large", `body exceeds ${maxBytes} bytes`, [
    { field: "body", message: `larger than ${maxBytes} bytes` },
  ]);
}

/**
 * The body as text, refused beyond `maxBytes`. Under @hono/node-server it is read straight from the Node request
 * (`readRequestBody`): building a web `Request` and its stream for every call costs more than the call itself.
 */
async function readBody(c: Context, maxBytes: number): Promise<string> {
  const incoming = nodeRequest(c);
  if (incoming !== undefined) return readRequestBody(incoming, maxBytes);
  if (Number(c.req.header("content-length") ?? "0") > maxBytes) throw tooLarge(maxBytes);
  const text = await c.req.text();
  if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
  return text;
}

/** A Node request's body as text, refused with a 413 beyond `maxBytes`, read from its events: no async iterator. */
export async function readRequestBody(incoming: IncomingMessage, maxBytes: number): Promise<string> {
  if (Number(incoming.headers["content-length"] ?? "0") > maxBytes) throw tooLarge(maxBytes);
  // A client gone while the handler was busy (a key fetch) leaves a destroyed request that emits nothing more.
  if (incoming.destroyed) throw new ClientGoneError("request aborted before its body was read");
  const body = await new Promise<BodyRead>((resolve, reject) => {
    (incoming as ReadingRequest)[BODY] = { chunks: [], size: 0, maxBytes, resolve, reject };
    incoming.on("data", onBodyData).on("end", onBodyEnd).on("error", onBodyError).on("close", onBodyClose);
  });
  if (body.size > maxBytes) throw tooLarge(maxBytes);
  return body.chunks.length === 1 ? (body.chunks[0] as Buffer).toString("utf8") : Buffer.concat(body.chunks).toString("utf8");
}

const BODY = Symbol("body being read");
interface BodyRead {
  chunks: Buffer[];
  size: number;
  maxBytes: number;
  resolve: (body: BodyRead) => void;
  reject: (error: Error) => void;
}
type ReadingRequest = IncomingMessage & { [BODY]?: BodyRead };

// Listeners shared by every request (they find their request as `this`): no async iterator, no closures per chunk.
function onBodyData(this: ReadingRequest, chunk: Buffer): void {
  const body = this[BODY] as BodyRead;
  body.size += chunk.length;
  // Past the limit the rest is drained, not kept, so that the 413 can still be sent on this connection.
  if (body.size <= body.maxBytes) body.chunks.push(chunk);
}

function onBodyEnd(this: ReadingRequest): void {
  const body = stopReading(this);
  body?.resolve(body);
}

/** Also how an aborted request ends: the server destroys it with an error. */
function onBodyError(this: ReadingRequest, error: Error): void {
  stopReading(this)?.reject(new ClientGoneError("request aborted while its body was read", { cause: error }));
}

/** Closed before its end: an abort that came without an error event. */
function onBodyClose(this: ReadingRequest): void {
  stopReading(this)?.reject(new ClientGoneError("request aborted while its body was read"));
}

function stopReading(request: ReadingRequest): BodyRead | undefined {
  const body = request[BODY];
  request.off("data", onBodyData).off("end", onBodyEnd).off("error", onBodyError).off("close", onBodyClose);
  request[BODY] = undefined;
  return body;
}

export function parseWith<Schema extends z.ZodType>(schema: Schema, value: unknown, fieldPrefix = ""): z.infer<Schema> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw invalid(
      result.error.issues.flatMap((issue) => {
        const path = [fieldPrefix, ...issue.path.map(String)].filter((part) => part !== "").join(".");
        if (issue.code === "unrecognized_keys") {
          return issue.keys.map((key) => ({ field: path === "" ? key : `${path}.${key}`, message: "unknown field" }));
        }
        return [{ field: path === "" ? "body" : path, message: issue.message }];
      }),
    );
  }
  return result.data;
}
