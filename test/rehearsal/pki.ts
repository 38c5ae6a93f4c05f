/**
 * The lab's public certificate authority: what Let's Encrypt is to a real worker. Every lab machine trusts it
 * (lab.ts adds it to the machine's trust store), so the control node verifies a worker's certificate for
 * `<name>.<domain>` as it would in the field. Certificates are made by the openssl program.
 */
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Certificate {
  certificatePem: string;
  privateKeyPem: string;
}

export class LabAuthority {
  private issued = 0;

  private constructor(
    private readonly dir: string,
    readonly certificatePem: string,
  ) {}

  /** A fresh CA in `dir` (a directory private to the lab). */
  static async create(dir: string): Promise<LabAuthority> {
    const key = join(dir, "ca.key");
    const cert = join(dir, "ca.crt");
    await run("openssl", [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=confscale rehearsal lab CA"],
      ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    ]);
    return new LabAuthority(dir, await readFile(cert, "utf8"));
  }

  /** A server certificate for DNS names and IP addresses, as an ACME CA would issue it after a challenge. */
  async issue(names: { dns: string[]; ip?: string[] }): Promise<Certificate> {
    this.issued += 1;
    const base = join(this.dir, `leaf-${this.issued}`);
    const subjectAltName = [...names.dns.map((name) => `DNS:${name}`), ...(names.ip ?? []).map((ip) => `IP:${ip}`)].join(",");
    await writeFile(`${base}.ext`, `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
    await run("openssl", [
      ...["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${names.dns[0] ?? names.ip?.[0] ?? "lab"}`],
    ]);
    await run("openssl", [
      ...["x509", "-req", "-in", `${base}.csr`, "-CA", join(this.dir, "ca.crt"), "-CAkey", join(this.dir, "ca.key")],
      ...["-CAcreateserial", "-days", "1", "-extfile", `${base}.ext`, "-out", `${base}.crt`],
    ]);
    return { certificatePem: await readFile(`${base}.crt`, "utf8"), privateKeyPem: await readFile(`${base}.key`, "utf8") };
  }
}
