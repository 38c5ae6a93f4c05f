import { IncomingMessage } from "node:http";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";

export interface FieldProblem {
  field: string;
  message: string;
}

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

export function invalid(issues: readonly FieldProblem[]): HttpError {
  const summary = issues
    .slice(0, 3)
    .map((issue) => `${issue.field}: ${issue.message}`)
    .join("; ");
  return new HttpError(400, "invalid_request", summary, issues);
}

/** Reads and validates a JSON body of at most `maxBytes`; any problem becomes a 4xx naming the field. */
export async function readJson<Schema extends z.ZodType>(c: Context, schema: Schema, maxBytes: number): Promise<z.infer<Schema>> {
  const text = await readBody(c, maxBytes);
  if (text.trim() === "") throw invalid([{ field: "body", message: "expected a JSON body" }]);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw invalid([{ field: "body", message: "body is not valid JSON" }]);
  }
  return parseWith(schema, value);
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "payload_too_large", `body exceeds ${maxBytes} bytes`, [{ field: "body", message: `larger than ${maxBytes} bytes` }]);
}

/**
 * The body as text, refused beyond `maxBytes`. Under @hono/node-server it is read straight from the Node request:
 * building a web `Request` and its stream for every check-in costs more than the rest of the check-in.
 */
async function readBody(c: Context, maxBytes: number): Promise<string> {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (!(incoming instanceof IncomingMessage)) {
    const text = await c.req.text();
    if (Buffer.byteLength(text) > maxBytes) throw tooLarge(maxBytes);
    return text;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  // Past the limit the rest is drained, not kept, so that the 413 can still be sent on this connection.
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
  }
  if (size > maxBytes) throw tooLarge(maxBytes);
  return Buffer.concat(chunks).toString("utf8");
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
