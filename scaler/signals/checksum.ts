import { createHash } from "node:crypto";

export type ChecksumAlgorithm = "sha1" | "sha256" | "sha384" | "sha512";

/**
 * The checksum BigBlueButton and Scalelite expect on an API call: hex(SHA(call + query + secret)),
 * where `query` is the query string exactly as sent, without the checksum parameter.
 */
export function apiChecksum(call: string, query: string, secret: string, algorithm: ChecksumAlgorithm = "sha256"): string {
  return createHash(algorithm)
    .update(call + query + secret)
    .digest("hex");
}

/** The URL of an API call with its checksum appended. */
export function signedUrl(base: string, call: string, params: Record<string, string>, secret: string, algorithm: ChecksumAlgorithm): URL {
  const query = new URLSearchParams(params).toString();
  const url = new URL(call, base.endsWith("/") ? base : `${base}/`);
  const checksum = apiChecksum(call, query, secret, algorithm);
  url.search = query === "" ? `checksum=${checksum}` : `${query}&checksum=${checksum}`;
  return url;
}
