import { readFileSync } from "node:fs";
import { parse } from "yaml";

/**
 * A stack file's config as the Pulumi runtime hands it to a program: `namespace:key` → string, structured values
 * as JSON. Encrypted values become `secretPlaceholder` and are listed in `secretKeys`.
 */
export function configMapFromStackFile(
  path: string,
  secretPlaceholder = "s".repeat(40),
): { raw: Record<string, string>; secretKeys: Set<string> } {
  const document = parse(readFileSync(path, "utf8")) as { config?: Record<string, unknown> };
  const raw: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [key, value] of Object.entries(document.config ?? {})) {
    if (typeof value === "object" && value !== null && "secure" in value) {
      raw[key] = secretPlaceholder;
      secretKeys.add(key);
    } else {
      raw[key] = typeof value === "string" ? value : JSON.stringify(value);
    }
  }
  return { raw, secretKeys };
}
