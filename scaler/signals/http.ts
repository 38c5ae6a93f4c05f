/** A signal source answered with an HTTP error, an unreadable body, or not in time. The URL never carries secrets. */
export class SignalError extends Error {
  constructor(
    message: string,
    readonly source: "prometheus" | "scalelite" | "bbb",
    /** The URL without its query string (where checksums live). */
    readonly url: string,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`${source} ${url}: ${message}`, options);
    this.name = "SignalError";
  }
}

/** The URL as it may appear in logs and errors: no query string, no credentials. */
export function safeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

export interface HttpRequest {
  source: SignalError["source"];
  url: URL;
  timeoutMs: number;
  method?: "GET" | "POST";
  json?: unknown;
  /** Statuses that carry a body worth reading (besides 2xx), e.g. Scalelite's 404 for "no servers". */
  acceptStatus?: readonly number[];
}

export async function requestText(request: HttpRequest): Promise<{ status: number; body: string }> {
  const where = safeUrl(request.url);
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: request.method ?? "GET",
      signal: AbortSignal.timeout(request.timeoutMs),
      ...(request.json === undefined ? {} : { body: JSON.stringify(request.json), headers: { "content-type": "application/json" } }),
    });
  } catch (error) {
    const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    throw new SignalError(
      timedOut ? `no answer within ${request.timeoutMs} ms` : `unreachable (${error instanceof Error ? error.message : String(error)})`,
      request.source,
      where,
      undefined,
      { cause: error },
    );
  }
  const body = await response.text();
  if (!response.ok && !(request.acceptStatus ?? []).includes(response.status)) {
    throw new SignalError(`HTTP ${response.status}: ${body.slice(0, 200)}`, request.source, where, response.status);
  }
  return { status: response.status, body };
}

export function parseJson(text: string, source: SignalError["source"], url: URL, status: number): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SignalError("the body is not JSON", source, safeUrl(url), status, { cause: error });
  }
}
