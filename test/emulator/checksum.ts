import { createHash } from "node:crypto";

/** BBB and Scalelite tell the checksum's hash function apart by the hex digest's length. */
const ALGORITHM_BY_LENGTH: Record<number, string> = { 40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512" };

export type ChecksumAlgorithm = "sha1" | "sha256" | "sha384" | "sha512";

/** The query string as sent, minus its `checksum` parameter (order and encoding kept, as the servers do). */
export function queryWithoutChecksum(rawQuery: string): string {
  return rawQuery
    .split("&")
    .filter((part) => part !== "" && !part.startsWith("checksum="))
    .join("&");
}

export function checksumOf(call: string, query: string, secret: string, algorithm: ChecksumAlgorithm = "sha256"): string {
  return createHash(algorithm)
    .update(call + query + secret)
    .digest("hex");
}

/** Whether the request `call?rawQuery` carries a valid checksum for `secret`. */
export function verifyChecksum(call: string, rawQuery: string, secret: string): boolean {
  const given = new URLSearchParams(rawQuery).get("checksum");
  if (given === null) return false;
  const algorithm = ALGORITHM_BY_LENGTH[given.length] as ChecksumAlgorithm | undefined;
  if (algorithm === undefined) return false;
  return checksumOf(call, queryWithoutChecksum(rawQuery), secret, algorithm) === given.toLowerCase();
}

/** A query string with its checksum appended, as a BBB or Scalelite client builds it. */
export function signedQuery(call: string, params: Record<string, string>, secret: string, algorithm: ChecksumAlgorithm = "sha256"): string {
  const query = new URLSearchParams(params).toString();
  const checksum = checksumOf(call, query, secret, algorithm);
  return query === "" ? `checksum=${checksum}` : `${query}&checksum=${checksum}`;
}
