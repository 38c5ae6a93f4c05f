// Every file an example stack renders, handed to the program that reads it on a real machine: cloud-init,
// promtool, caddy, compose (compose-go), shellcheck, node-exporter, actionlint. `npm run setup` installs them.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BBB_RELEASES } from "../../infra/config.js";
import { controlNodeFirewallRules, environmentWorkerFirewallRules, jitsiFirewallNeeds, workerFirewallRules } from "../../infra/firewall.js";
import { parseSettings } from "../../scaler/settings.js";
import { CONTROL_NODE_SECRET_FILES, NODE_EXPORTER_RELEASE, SCALER_SHUTDOWN_GRACE_MS } from "../../infra/templates.js";
import { freeLoopbackPort } from "../harness/ports.js";
import { startUntilReady } from "../harness/process.js";
import { realTool, runTool } from "../harness/realTools.js";
import { AWKWARD_SECRETS, EXAMPLE_STACKS, JITSI_ONLY_STACKS, renderStackFiles, type StackFiles } from "../harness/stackFiles.js";

interface CloudConfig {
  runcmd?: (string | string[])[];
  write_files?: { path: string; content: string; permissions?: string; owner?: string }[];
  packages?: string[];
}

interface ComposeView {
  services: Record<string, { environment: Record<string, string | null>; stop_grace_period?: string }>;
}

let workDir: string;
beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "confscale-consumers-"));
});
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

function expectTool(result: { code: number; stdout: string; stderr: string }, what: string): void {
  expect(result.code, `${what}:\n${result.stdout}\n${result.stderr}`).toBe(0);
}

/** The control node's project directory as `pulumi up` leaves it on the node: compose files and secret files. */
async function projectDirectory(env: string, files: StackFiles): Promise<string> {
  const root = join(workDir, `project-${env}`);
  const secrets = Object.fromEntries(
    Object.entries(files.secretFiles).map(([name, content]) => [
      CONTROL_NODE_SECRET_FILES[name as keyof typeof CONTROL_NODE_SECRET_FILES],
      content,
    ]),
  );
  await writeTree(root, { ...files.projectFiles, ...secrets, "scaler.yaml": files.scalerSettings });
  return root;
}

async function loadCompose(env: string, files: StackFiles): Promise<ComposeView> {
  const root = await projectDirectory(env, files);
  const result = await runTool("compose-check", [join(root, "docker-compose.yml")]);
  expectTool(result, "compose-check (compose-go)");
  return JSON.parse(result.stdout) as ComposeView;
}

/** Shell snippets of a cloud-config: `sh -c`/`bash -c` and string runcmd entries, scripts written to disk, units' Exec lines. */
function shellSnippets(userData: string): { where: string; script: string }[] {
  const config = parse(userData) as CloudConfig;
  const snippets: { where: string; script: string }[] = [];
  (config.runcmd ?? []).forEach((entry, index) => {
    if (typeof entry === "string") snippets.push({ where: `runcmd[${index}]`, script: entry });
    else if (["bash", "sh", "/bin/sh", "/bin/bash"].includes(entry[0] ?? "") && entry[1] === "-c")
      snippets.push({ where: `runcmd[${index}]`, script: entry[2] ?? "" });
  });
  for (const file of config.write_files ?? []) {
    if (/^#!.*\b(ba)?sh\b/.test(file.content)) snippets.push({ where: file.path, script: file.content });
    if (file.path.endsWith(".service")) {
      for (const [, directive, line] of file.content.matchAll(/^(Exec\w+)=[-@:+!]*(.+)$/gm)) {
        const inner = /^(?:\/usr)?(?:\/bin\/)?(?:ba)?sh -c '(.*)'$/.exec(line ?? "");
        // systemd splits an unquoted $VAR on whitespace, as the shell does: that is the point of such a line.
        snippets.push({ where: `${file.path} ${directive}`, script: inner ? (inner[1] ?? "") : `# shellcheck disable=SC2086\n${line}` });
      }
    }
  }
  return snippets;
}

describe.each(EXAMPLE_STACKS)("the files the %s stack renders, read by their real consumers", (env) => {
  const files = renderStackFiles(env);

  it("cloud-init accepts the control node's and the worker's user data", async () => {
    for (const [name, text] of [
      ["control", files.controlNodeUserData],
      ["worker", files.workerUserData!],
    ] as const) {
      const path = join(workDir, `${env}-${name}-user-data.yaml`);
      await writeFile(path, text);
      expectTool(await runTool("cloud-init", ["schema", "--config-file", path]), `cloud-init schema of the ${name}'s user data`);
    }
  });

  it("promtool accepts prometheus.yml and caddy accepts the Caddyfile", async () => {
    const root = await projectDirectory(env, files);
    expectTool(await runTool("promtool", ["check", "config", join(root, "prometheus.yml")]), "promtool check config");
    expectTool(await runTool("caddy", ["validate", "--config", join(root, "Caddyfile"), "--adapter", "caddyfile"]), "caddy validate");
  });

  it("compose loads the project, and each service gets exactly its own secrets, verbatim", async () => {
    const compose = await loadCompose(env, files);
    const environment = (service: string) => compose.services[service]?.environment ?? {};
    // Values compose's env-file parser used to cut at ` #` or expand at `$` arrive whole, a PEM key with its newlines.
    expect(environment("grafana").GF_SECURITY_ADMIN_PASSWORD).toBe(AWKWARD_SECRETS.grafanaAdminPassword);
    expect(environment("scaler")).toMatchObject({
      PULUMI_CONFIG_PASSPHRASE: AWKWARD_SECRETS.fleetPassphrase,
      PULUMI_BACKEND_URL: AWKWARD_SECRETS.fleetBackendUrl,
      CONFSCALE_NODE_EXPORTER_PASSWORD: AWKWARD_SECRETS.nodeExporterPassword,
      ...AWKWARD_SECRETS.cloudCredentials,
    });
    expect(environment("scaler").LOADBALANCER_SECRET).toBe(AWKWARD_SECRETS.scaleliteSecret);
    // Nothing of the fleet's passphrase, cloud credentials or other services' secrets reaches Scalelite or Grafana.
    const scalerOnly = ["PULUMI_CONFIG_PASSPHRASE", "PULUMI_BACKEND_URL", "CONFSCALE_NODE_EXPORTER_PASSWORD", "CONFSCALE_BBB_SECRET"];
    for (const service of ["scalelite-api", "scalelite-poller", "scalelite-recording-importer", "scalelite-nginx", "grafana", "postgres"]) {
      const keys = Object.keys(environment(service));
      for (const key of [...scalerOnly, ...Object.keys(AWKWARD_SECRETS.cloudCredentials)]) expect(keys, service).not.toContain(key);
    }
    expect(Object.keys(environment("scalelite-api"))).not.toContain("GF_SECURITY_ADMIN_PASSWORD");
    for (const service of ["caddy", "prometheus", "redis", "scalelite-nginx"]) {
      expect(Object.values(environment(service)).join("\n"), service).not.toContain(AWKWARD_SECRETS.scaleliteSecret);
    }
    // Scalelite reaches its database with the password PostgreSQL was given.
    const postgresPassword = environment("postgres").POSTGRES_PASSWORD ?? "";
    expect(postgresPassword).toMatch(/^[0-9a-f]{64}$/);
    expect(environment("scalelite-api").DATABASE_URL).toBe(`postgres://scalelite:${postgresPassword}@postgres:5432/scalelite`);
  });

  it("Scalelite admits the scaler's calls on the compose network and builds https links behind Caddy", async () => {
    const compose = await loadCompose(env, files);
    const settings = parse(files.scalerSettings) as { fleet: { scaleliteUrl: string } };
    expect(new URL(settings.fleet.scaleliteUrl).host).toBe("scalelite-api:3000");
    // With URL_HOST, Rails admits only that Host header and answers the scaler's calls as a blocked host.
    for (const service of ["scalelite-api", "scalelite-poller", "scalelite-recording-importer"]) {
      expect(Object.keys(compose.services[service]?.environment ?? {}), service).not.toContain("URL_HOST");
    }
    // Behind Caddy, nginx passes on Caddy's X-Forwarded-Proto (https) instead of its own scheme (http).
    expect(compose.services["scalelite-nginx"]?.environment).toMatchObject({ NGINX_BEHIND_PROXY: "true" });
    expect(Object.keys(compose.services["scalelite-nginx"]?.environment ?? {})).not.toContain("NGINX_SSL");
  });

  it("publishes only ports the control node's firewall opens, and scrapes workers over IPv4, which their 9100 rule admits", () => {
    const compose = parse(files.projectFiles["docker-compose.yml"] ?? "") as {
      services: Record<string, { ports?: string[] }>;
      networks?: Record<string, { enable_ipv6?: boolean } | null>;
    };
    const open = controlNodeFirewallRules(files.config.adminCidrs).map((rule) => `${rule.fromPort}/${rule.protocol}`);
    const published = compose.services.caddy?.ports ?? [];
    expect(published.length).toBeGreaterThan(0);
    for (const port of published) {
      // "443:443" or "443:443/udp": the host port and its protocol (tcp unless named).
      expect(open, port).toContain(`${port.split(":")[0]}/${port.split("/")[1] ?? "tcp"}`);
    }
    // The compose network has no IPv6, so Prometheus's scrapes leave by the node's IPv4 address, the one the rule names.
    expect(Object.values(compose.networks ?? {}).some((network) => network?.enable_ipv6 === true)).toBe(false);
    const scrapeRule = workerFirewallRules(files.config.adminCidrs, "198.51.100.10").find((rule) => rule.fromPort === 9100);
    expect(scrapeRule?.sourceCidrs).toEqual(["198.51.100.10/32"]);
  });

  it("gives the scaler the time its graceful stop takes, and systemd gives compose that much too", async () => {
    const compose = await loadCompose(env, files);
    const grace = compose.services.scaler?.stop_grace_period ?? "10s";
    const seconds = [...grace.matchAll(/(\d+)([hms])/g)].reduce(
      (sum, [, n, unit]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[unit as "h"],
      0,
    );
    const settings = parse(files.scalerSettings) as { shutdownGraceMs: number };
    expect(settings.shutdownGraceMs).toBe(SCALER_SHUTDOWN_GRACE_MS);
    // Beyond the HTTP grace, the fleet period in progress (an `up`) finishes before the stop.
    expect(seconds).toBeGreaterThan(settings.shutdownGraceMs / 1000 + 60);
    const unit = (parse(files.controlNodeUserData) as CloudConfig).write_files?.find((file) => file.path.endsWith("confscale.service"));
    const timeout = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit?.content ?? "")?.[1]);
    expect(timeout).toBeGreaterThan(seconds);
  });

  it("shellcheck accepts every shell snippet of the control node's and the worker's cloud-init", async () => {
    const snippets = [...shellSnippets(files.controlNodeUserData), ...shellSnippets(files.workerUserData!)];
    expect(snippets.some((snippet) => snippet.where.includes("node-exporter-tls.sh"))).toBe(true);
    expect(snippets.some((snippet) => snippet.where.includes("ExecStart"))).toBe(true);
    for (const snippet of snippets) {
      const dialect = snippet.script.startsWith("#!/bin/sh") ? "sh" : "bash";
      expectTool(await runTool("shellcheck", ["--shell", dialect, "-"], { input: snippet.script }), `shellcheck of ${snippet.where}`);
    }
  });
});

describe("a worker's node-exporter", () => {
  const files = renderStackFiles("do-example");
  const config = parse(files.workerUserData!) as CloudConfig;
  const written = (path: string) => config.write_files?.find((file) => file.path === path)?.content ?? "";

  it("installs a pinned release that knows --web.config.file, checked by its sha256, not Ubuntu's old package", async () => {
    // Ubuntu's package is 0.18.1 on 20.04 and 1.3.1 on 22.04: both refuse --web.config.file.
    expect(config.packages ?? []).not.toContain("prometheus-node-exporter");
    const script = written("/usr/local/sbin/confscale-install-node-exporter");
    expect(script).toContain(`version=${NODE_EXPORTER_RELEASE.version}`);
    expect(script).toContain(NODE_EXPORTER_RELEASE.sha256.amd64);
    expect(
      (config.runcmd ?? []).some((step) => Array.isArray(step) && step.includes("/usr/local/sbin/confscale-install-node-exporter")),
    ).toBe(true);
    // A download that is not the release is refused before anything is installed.
    const stub = join(workDir, "stub-bin");
    await mkdir(stub, { recursive: true });
    await writeFile(join(stub, "dpkg"), "#!/bin/sh\necho amd64\n", { mode: 0o755 });
    await writeFile(join(stub, "curl"), '#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\necho tampered > "$2"\n', { mode: 0o755 });
    await writeFile(join(stub, "install-node-exporter"), script);
    const run = await promisify(execFile)("bash", ["--norc", join(stub, "install-node-exporter")], {
      env: { PATH: `${stub}:/usr/bin:/bin` },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/checksum did NOT match/);
  });

  it("starts with the rendered unit's flags and web config, and answers only Prometheus's password", async () => {
    const standIn = realTool("prometheus-node-exporter");
    const said = await runTool("prometheus-node-exporter", ["--version"]);
    const version = /version (\d+\.\d+\.\d+)/.exec(said.stdout + said.stderr)?.[1] ?? "0.0.0";
    const newer = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true }) >= 0;
    // The stand-in knows --web.config.file (1.5.0 on), and the release the workers install is no older than it.
    expect(newer(version, "1.5.0"), `stand-in node-exporter ${version}`).toBe(true);
    expect(newer(NODE_EXPORTER_RELEASE.version, version)).toBe(true);

    const dir = await mkdtemp(join(workDir, "node-exporter-"));
    const hostname = `bbb-1.${files.config.domain}`;
    await promisify(execFile)(realTool("openssl"), [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
      ...["-subj", `/CN=${hostname}`, "-addext", `subjectAltName=DNS:${hostname}`],
      ...["-keyout", join(dir, "privkey.pem"), "-out", join(dir, "fullchain.pem")],
    ]);
    const web = parse(written("/etc/prometheus/node-exporter-web.yml")) as { tls_server_config: Record<string, string> };
    web.tls_server_config.cert_file = join(dir, "fullchain.pem");
    web.tls_server_config.key_file = join(dir, "privkey.pem");
    await writeFile(join(dir, "web.yml"), JSON.stringify(web));

    // The unit's ExecStart with $ARGS from its EnvironmentFile, as systemd expands them.
    const unit = written("/etc/systemd/system/prometheus-node-exporter.service");
    const environmentFile = /^EnvironmentFile=(.+)$/m.exec(unit)?.[1] ?? "";
    const args = /^ARGS="(.*)"$/m.exec(written(environmentFile))?.[1] ?? "";
    const execStart = (/^ExecStart=(.+)$/m.exec(unit)?.[1] ?? "").replace("$ARGS", args).split(/\s+/);
    expect(execStart[0]).toBe("/usr/local/bin/node_exporter");
    const port = await freeLoopbackPort();
    const flags = execStart.slice(1).map((flag) => {
      if (flag.startsWith("--web.config.file=")) return `--web.config.file=${join(dir, "web.yml")}`;
      if (flag.startsWith("--web.listen-address=")) return `--web.listen-address=127.0.0.1:${port}`;
      return flag;
    });
    expect(flags).toContain(`--web.config.file=${join(dir, "web.yml")}`);
    const exporter = await startUntilReady(standIn, flags, /Listening on|TLS is enabled/, { timeoutMs: 60_000 });
    try {
      const scrape = (auth?: string) =>
        promisify(execFile)("curl", [
          ...["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", join(dir, "fullchain.pem")],
          ...["--resolve", `${hostname}:${port}:127.0.0.1`, ...(auth === undefined ? [] : ["-u", auth])],
          `https://${hostname}:${port}/metrics`,
        ]).then(({ stdout }) => stdout);
      expect(await scrape()).toBe("401");
      expect(await scrape("prometheus:wrong-password")).toBe("401");
      expect(await scrape(`prometheus:${AWKWARD_SECRETS.nodeExporterPassword}`)).toBe("200");
    } finally {
      await exporter.stop();
    }
  });

  it("is reachable from the control node through ufw, which bbb-install -w enables with 22, 80, 443 and media only", () => {
    const steps = (config.runcmd ?? []).filter(Array.isArray);
    const install = steps.findIndex((step) => step[0] === "bash" && step[1] === "/root/bbb-install.sh");
    const allow = steps.findIndex((step) => step[0] === "ufw" && step.includes("9100"));
    expect(allow).toBeGreaterThan(install);
    const rule = steps[allow] ?? [];
    expect(rule.slice(0, rule.indexOf("comment"))).toEqual([
      "ufw",
      "allow",
      "proto",
      "tcp",
      "from",
      "198.51.100.10",
      "to",
      "any",
      "port",
      "9100",
    ]);
  });

  it("installs the BigBlueButton release of the stack with the bbb-install branch and -v name of that release", () => {
    const release = BBB_RELEASES[files.config.workers!.bbbVersion];
    const steps = (config.runcmd ?? []).filter(Array.isArray);
    const download = steps.find((step) => step.some((word) => word.includes("bbb-install.sh")) && step[0] === "curl") ?? [];
    expect(download.join(" ")).toContain(`/bbb-install/${release.installBranch}/bbb-install.sh`);
    const install = steps.find((step) => step[0] === "bash" && step[1] === "/root/bbb-install.sh") ?? [];
    expect(install[install.indexOf("-v") + 1]).toBe(release.installVersion);
  });
});

describe("the pull-request workflow", () => {
  it("passes actionlint (which runs shellcheck on its run steps)", async () => {
    realTool("shellcheck");
    const result = await runTool("actionlint", ["-shellcheck", realTool("shellcheck"), "-color=false"], { cwd: process.cwd() });
    expectTool(result, "actionlint");
  });

  interface Step {
    id?: string;
    if?: string;
    run?: string;
    uses?: string;
    env?: Record<string, string>;
  }
  const workflow = parse(readFileSync(".github/workflows/pulumi-preview.yml", "utf8")) as { jobs: { preview: { steps: Step[] } } };
  const steps = workflow.jobs.preview.steps;

  /** The gate step as the runner runs it: its `run` in bash, `${{ matrix.stack }}` and the repository's secrets in its env. */
  async function dryRun(stack: string, secrets: Record<string, string>): Promise<{ ready: string; output: string }> {
    const gate = steps.find((step) => step.id === "ready");
    expect(gate?.run, "a gate step with id ready").toBeDefined();
    const outputFile = join(workDir, `github-output-${stack}-${Object.keys(secrets).length}`);
    await writeFile(outputFile, "");
    const env: Record<string, string> = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", GITHUB_OUTPUT: outputFile };
    for (const [name, value] of Object.entries(gate?.env ?? {})) {
      env[name] = value
        .replace("${{ matrix.stack }}", stack)
        .replace(/^\$\{\{ secrets\.(\w+) \}\}$/, (_match, secret: string) => secrets[secret] ?? "");
    }
    const { stdout } = await promisify(execFile)("bash", ["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", gate?.run ?? ""], { env });
    return { ready: /^ready=(\w+)$/m.exec(await readFile(outputFile, "utf8"))?.[1] ?? "", output: stdout };
  }

  const repositorySecrets = {
    PULUMI_BACKEND_URL: "s3://state",
    PULUMI_CONFIG_PASSPHRASE: "x",
    IONOS_USERNAME: "u",
    IONOS_PASSWORD: "p",
    DIGITALOCEAN_TOKEN: "t",
  };

  it("skips an example stack whose secrets are not set, with a notice naming them, instead of failing its preview", async () => {
    const { ready, output } = await dryRun("do-example", repositorySecrets);
    expect(ready).toBe("false");
    expect(output).toMatch(/^::notice title=preview of do-example skipped::.*confscale:scaleliteSecret.*confscale:nodeExporterPassword/m);
    const preview = steps.find((step) => step.uses?.startsWith("pulumi/actions"));
    expect(preview?.if).toBe("steps.ready.outputs.ready == 'true'");
  });

  it("previews a stack with its secrets set when the repository has its backend and cloud credentials", async () => {
    expect((await dryRun("local", repositorySecrets)).ready).toBe("true");
    const { IONOS_USERNAME: _u, IONOS_PASSWORD: _p, ...withoutIonos } = repositorySecrets;
    const skipped = await dryRun("local", withoutIonos);
    expect(skipped.ready).toBe("false");
    expect(skipped.output).toMatch(/ionos credentials: the repository secrets IONOS_TOKEN or IONOS_USERNAME \+ IONOS_PASSWORD/);
  });
});

describe("the Jitsi workers the jitsi-example stack renders, read by their real consumers", () => {
  const files = renderStackFiles("jitsi-example");
  const groups = Object.entries(files.jitsiWorkerUserData);

  it("renders a videobridge and a recorder group", () => {
    expect(groups.map(([name, group]) => `${name}:${group.component}`).sort()).toEqual(["bridges:JVB", "recorders:jibri"]);
  });

  it.each(groups)("cloud-init accepts the %s worker's user data, and shellcheck every script of it", async (name, { userData }) => {
    const path = join(workDir, `jitsi-${name}-user-data.yaml`);
    await writeFile(path, userData);
    expectTool(await runTool("cloud-init", ["schema", "--config-file", path]), `cloud-init schema of the ${name} worker's user data`);
    const snippets = shellSnippets(userData);
    expect(snippets.map((snippet) => snippet.where)).toEqual(
      expect.arrayContaining([
        "/usr/local/sbin/confscale-add-jitsi-repository",
        "/usr/local/sbin/confscale-install-jitsi-component",
        "/usr/local/sbin/confscale-install-node-exporter",
        "/usr/local/sbin/confscale-jitsi-reconfigure",
      ]),
    );
    for (const snippet of snippets) {
      const dialect = snippet.script.startsWith("#!/bin/sh") ? "sh" : "bash";
      expectTool(await runTool("shellcheck", ["--shell", dialect, "-"], { input: snippet.script }), `shellcheck of ${snippet.where}`);
    }
  });

  it("hands the scaler, and no other service, the XMPP passwords verbatim", async () => {
    const compose = await loadCompose("jitsi-example", files);
    const environment = (service: string) => compose.services[service]?.environment ?? {};
    expect(environment("scaler")).toMatchObject({
      CONFSCALE_JITSI_JVB_PASSWORD: AWKWARD_SECRETS.jitsi?.jitsiJvbPassword,
      CONFSCALE_JITSI_JIBRI_PASSWORD: AWKWARD_SECRETS.jitsi?.jitsiJibriPassword,
      CONFSCALE_JITSI_RECORDER_PASSWORD: AWKWARD_SECRETS.jitsi?.jitsiRecorderPassword,
    });
    for (const service of Object.keys(compose.services).filter((service) => service !== "scaler")) {
      expect(
        Object.keys(environment(service)).filter((key) => key.startsWith("CONFSCALE_JITSI_")),
        service,
      ).toEqual([]);
    }
  });

  it.each(groups)(
    "gives the %s worker's sidecar a reconfigure script that rewrites the rendered files and restarts its component",
    (_name, { component, userData }) => {
      const files = (parse(userData) as CloudConfig).write_files ?? [];
      const written = (path: string) => files.find((file) => file.path === path);
      const env = written("/etc/confscale/jitsi-sidecar.env")?.content ?? "";
      // The sidecar (jitsi-autoscaler-sidecar's config.ts) runs RECONFIGURE_SCRIPT with exec, as its unprivileged user.
      expect(env).toMatch(/^RECONFIGURE_SCRIPT=sudo -n \/usr\/local\/sbin\/confscale-jitsi-reconfigure$/m);
      const script = written("/usr/local/sbin/confscale-jitsi-reconfigure");
      expect(script?.permissions).toBe("0755");
      expect(script?.content).toContain("cloud-init single --name write_files --frequency always");
      expect(script?.content).toContain(`systemctl restart ${component === "JVB" ? "jitsi-videobridge2" : "jibri"}.service`);
      // sudo lets the sidecar's group (the package unit's Group=jitsi) run that script, without arguments, and nothing else.
      const sudoers = written("/etc/sudoers.d/confscale-jitsi-reconfigure");
      expect(sudoers).toMatchObject({
        permissions: "0440",
        content: '%jitsi ALL=(root) NOPASSWD: /usr/local/sbin/confscale-jitsi-reconfigure ""\n',
      });
    },
  );

  it.each(groups)("visudo accepts the %s worker's sudoers rule as sudo would read it from /etc/sudoers.d", async (name, { userData }) => {
    const rule = ((parse(userData) as CloudConfig).write_files ?? []).find(
      (file) => file.path === "/etc/sudoers.d/confscale-jitsi-reconfigure",
    );
    const path = join(workDir, `sudoers-${name}`);
    await writeFile(path, rule?.content ?? "", { mode: 0o440 });
    expectTool(await runTool("visudo", ["--check", "--file", path]), `visudo of ${name}'s sudoers rule`);
  });

  it("opens the videobridges' UDP media port to everyone on the environment's worker firewall", () => {
    const rules = workerFirewallRules(files.config.adminCidrs, "198.51.100.10", jitsiFirewallNeeds(files.config.jitsi));
    expect(rules).toContainEqual(
      expect.objectContaining({ protocol: "udp", fromPort: 10000, toPort: 10000, sourceCidrs: ["0.0.0.0/0", "::/0"] }),
    );
    expect(rules).toContainEqual(expect.objectContaining({ protocol: "tcp", fromPort: 9090, sourceCidrs: ["203.0.113.7/32"] }));
    // The bridge listens where the rules open: jvb.conf's media and websocket ports come from the same table.
    const jvb = files.jitsiWorkerUserData.bridges?.userData ?? "";
    const jvbConf = (parse(jvb) as CloudConfig).write_files?.find((file) => file.path === "/etc/jitsi/videobridge/jvb.conf")?.content ?? "";
    expect(jvbConf).toMatch(/udp \{\s+port = 10000\s+\}/);
    expect(jvbConf).toMatch(/public \{\s+port = 9090\s+\}/);
  });
});

describe.each(JITSI_ONLY_STACKS)("the files the Jitsi-only %s stack renders, read by their real consumers", (env) => {
  const files = renderStackFiles(env);
  const groups = Object.entries(files.jitsiWorkerUserData);

  it("cloud-init accepts the control node's and each Jitsi worker's user data, and shellcheck every script of them", async () => {
    expect(files.workerUserData).toBeUndefined();
    expect(groups.length).toBeGreaterThan(0);
    for (const [name, text] of [["control", files.controlNodeUserData], ...groups.map(([group, { userData }]) => [group, userData])]) {
      const path = join(workDir, `${env}-${name}-user-data.yaml`);
      await writeFile(path, text ?? "");
      expectTool(await runTool("cloud-init", ["schema", "--config-file", path]), `cloud-init schema of the ${name}'s user data`);
      for (const snippet of shellSnippets(text ?? "")) {
        const dialect = snippet.script.startsWith("#!/bin/sh") ? "sh" : "bash";
        expectTool(await runTool("shellcheck", ["--shell", dialect, "-"], { input: snippet.script }), `shellcheck of ${snippet.where}`);
      }
    }
  });

  it("promtool accepts prometheus.yml, which discovers each group's workers and no BBB fleet's; caddy accepts the Caddyfile", async () => {
    const root = await projectDirectory(env, files);
    expectTool(await runTool("promtool", ["check", "config", join(root, "prometheus.yml")]), "promtool check config");
    expectTool(await runTool("caddy", ["validate", "--config", join(root, "Caddyfile"), "--adapter", "caddyfile"]), "caddy validate");
    const prometheus = parse(files.projectFiles["prometheus.yml"] ?? "") as {
      scrape_configs: { job_name: string; http_sd_configs?: { url: string }[] }[];
    };
    const discovery = prometheus.scrape_configs.find((job) => job.job_name === "node-exporter")?.http_sd_configs ?? [];
    expect(discovery.map((entry) => entry.url)).toEqual(
      files.config.jitsi!.groups.map((group) => `http://scaler:8080/fleets/jitsi-${group.name}/targets`),
    );
    // Nothing is proxied to a Scalelite that does not run.
    expect(files.projectFiles.Caddyfile).not.toContain("scalelite-nginx");
  });

  it("compose loads a project without Scalelite or PostgreSQL, and the scaler gets its secrets verbatim, no Scalelite secret", async () => {
    const compose = await loadCompose(env, files);
    expect(Object.keys(compose.services).sort()).toEqual(["caddy", "grafana", "prometheus", "redis", "scaler"]);
    expect(Object.keys(files.secretFiles).sort()).toEqual(["grafana", "nodeExporterPassword", "scaler"]);
    const environment = (service: string) => compose.services[service]?.environment ?? {};
    expect(environment("scaler")).toMatchObject({
      PULUMI_CONFIG_PASSPHRASE: AWKWARD_SECRETS.fleetPassphrase,
      PULUMI_BACKEND_URL: AWKWARD_SECRETS.fleetBackendUrl,
      CONFSCALE_NODE_EXPORTER_PASSWORD: AWKWARD_SECRETS.nodeExporterPassword,
      CONFSCALE_JITSI_JVB_PASSWORD: AWKWARD_SECRETS.jitsi?.jitsiJvbPassword,
      ...AWKWARD_SECRETS.cloudCredentials,
    });
    expect(Object.keys(environment("scaler"))).not.toContain("LOADBALANCER_SECRET");
    expect(environment("grafana").GF_SECURITY_ADMIN_PASSWORD).toBe(AWKWARD_SECRETS.grafanaAdminPassword);
  });

  it("the scaler reads scaler.yaml: no BBB fleet, the groups' stacks settings in jitsiFleet, each group with its image", () => {
    const settings = parseSettings({
      ...(parse(files.scalerSettings) as object),
      redis: { url: "redis://redis:6379/1" },
      sidecar: { keyBaseUrl: `https://${files.config.domain}/scaler/keys` },
    });
    expect(settings.fleet).toBeUndefined();
    expect(settings.jitsiFleet?.template).toMatchObject({ env, domain: files.config.domain, controlNodeIp: "198.51.100.10" });
    expect(settings.jitsi?.groups.every((group) => group.image === "ubuntu-22-04-x64")).toBe(true);
  });

  it("publishes only ports the control node's firewall opens; the worker firewall opens the bridges' ports and no BigBlueButton port", () => {
    const compose = parse(files.projectFiles["docker-compose.yml"] ?? "") as { services: Record<string, { ports?: string[] }> };
    const open = controlNodeFirewallRules(files.config.adminCidrs).map((rule) => `${rule.fromPort}/${rule.protocol}`);
    for (const port of compose.services.caddy?.ports ?? []) expect(open, port).toContain(`${port.split(":")[0]}/tcp`);
    const rules = environmentWorkerFirewallRules(files.config.adminCidrs, "198.51.100.10", false, jitsiFirewallNeeds(files.config.jitsi));
    expect(rules.map((rule) => `${rule.fromPort}/${rule.protocol}`).sort()).toEqual([
      "10000/udp",
      "22/tcp",
      "80/tcp",
      "9090/tcp",
      "9100/tcp",
    ]);
  });
});
