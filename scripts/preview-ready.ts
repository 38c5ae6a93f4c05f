// `node --import tsx scripts/preview-ready.ts <stack>`: whether CI can preview an environment stack, the gate of
// .github/workflows/pulumi-preview.yml. A stack whose secrets are not set yet (the example stacks) or whose
// backend, passphrase or cloud credentials the repository has no secrets for is skipped with a notice naming what
// is missing, instead of a preview that can only fail. Writes `ready=true|false` to $GITHUB_OUTPUT when set.
import { appendFileSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { PROVIDERS, isCloudName } from "../infra/clouds/index.js";

const { positionals } = parseArgs({ allowPositionals: true });
const stack = positionals[0];
if (stack === undefined || positionals.length > 1) {
  console.error("usage: preview-ready <stack>");
  process.exit(2);
}

/** Secrets every environment sets with `pulumi config set --secret` before its first preview. */
const STACK_SECRETS = ["confscale:scaleliteSecret", "confscale:grafanaAdminPassword", "confscale:nodeExporterPassword"];

const present = (name: string) => (process.env[name] ?? "") !== "";
const file = `stacks/Pulumi.${stack}.yaml`;
const document = parse(readFileSync(file, "utf8")) as { encryptionsalt?: string; config?: Record<string, unknown> };
const config = document.config ?? {};
const missing: string[] = [];
for (const key of STACK_SECRETS) {
  const value = config[key];
  if (typeof value !== "object" || value === null || !("secure" in value))
    missing.push(`${key} (pulumi config set --secret ${key} … -s ${stack})`);
}
if (!present("PULUMI_BACKEND_URL") && !present("PULUMI_ACCESS_TOKEN"))
  missing.push("the repository secret PULUMI_BACKEND_URL or PULUMI_ACCESS_TOKEN");
if (document.encryptionsalt !== undefined && !present("PULUMI_CONFIG_PASSPHRASE"))
  missing.push("the repository secret PULUMI_CONFIG_PASSPHRASE");
const cloud = String(config["confscale:cloud"] ?? "");
// Each cloud's credentials as environment variables, as its provider names them: any one complete set will do.
const sets = isCloudName(cloud) ? PROVIDERS[cloud].credentialSets : [];
if (!sets.some((names) => names.every(present))) {
  missing.push(
    `${cloud} credentials: the repository secret${sets.length === 1 && (sets[0]?.length ?? 0) === 1 ? "" : "s"} ${sets.map((names) => names.join(" + ")).join(" or ")}`,
  );
}

const ready = missing.length === 0;
if (ready) console.log(`${stack}: ready to preview`);
else console.log(`::notice title=preview of ${stack} skipped::${file} cannot be previewed yet; missing: ${missing.join("; ")}`);
if (process.env.GITHUB_OUTPUT !== undefined) appendFileSync(process.env.GITHUB_OUTPUT, `ready=${ready}\n`);
