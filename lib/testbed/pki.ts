/**
 * A throw-away PKI for one test control plane, made with `openssl` (ECDSA P-256: fast to make):
 * a CA, serving certificates with the addresses clients use, client certificates whose CN/O are the
 * Kubernetes user and groups, and the service-account signing key pair. Every file lands in `dir`,
 * which the caller removes with everything else it made.
 */
import { CommandRunner } from "../linux/exec.ts";

const runner = new CommandRunner();

export interface CertFiles {
  cert: string;
  key: string;
}

export interface CertRequest {
  /** File base name under the PKI directory. */
  name: string;
  /** Subject CN (the Kubernetes user name for client certificates). */
  cn: string;
  /** Subject O entries (the Kubernetes groups). */
  orgs?: string[];
  /** Subject alternative names; presence makes it a serving certificate. */
  dns?: string[];
  ips?: string[];
  /** Days of validity (default 2). */
  days?: number;
}

export class Pki {
  readonly dir: string;
  readonly ca: CertFiles;

  private constructor(dir: string) {
    this.dir = dir;
    this.ca = { cert: `${dir}/ca.crt`, key: `${dir}/ca.key` };
  }

  /** Makes `dir` (mode 0700) with a new CA in it. */
  static async create(dir: string): Promise<Pki> {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const pki = new Pki(dir);
    await ecKey(pki.ca.key);
    await runner.run([
      "openssl",
      "req",
      "-x509",
      "-new",
      "-key",
      pki.ca.key,
      "-subj",
      "/CN=hostnic-testbed-ca",
      "-days",
      "2",
      "-out",
      pki.ca.cert,
    ]);
    return pki;
  }

  /** Issues a certificate signed by the CA. */
  async issue(req: CertRequest): Promise<CertFiles> {
    const files = { cert: `${this.dir}/${req.name}.crt`, key: `${this.dir}/${req.name}.key` };
    const csr = `${this.dir}/${req.name}.csr`;
    const ext = `${this.dir}/${req.name}.ext`;
    await ecKey(files.key);
    const subject = `/CN=${req.cn}${(req.orgs ?? []).map((o) => `/O=${o}`).join("")}`;
    await runner.run(["openssl", "req", "-new", "-key", files.key, "-subj", subject, "-out", csr]);
    const sans = [
      ...(req.dns ?? []).map((d) => `DNS:${d}`),
      ...(req.ips ?? []).map((i) => `IP:${i}`),
    ];
    const serving = sans.length > 0;
    await Deno.writeTextFile(
      ext,
      [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        `extendedKeyUsage=${serving ? "serverAuth,clientAuth" : "clientAuth"}`,
        ...(serving ? [`subjectAltName=${sans.join(",")}`] : []),
      ].join("\n") + "\n",
    );
    await runner.run([
      "openssl",
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      this.ca.cert,
      "-CAkey",
      this.ca.key,
      "-CAcreateserial",
      "-days",
      String(req.days ?? 2),
      "-extfile",
      ext,
      "-out",
      files.cert,
    ]);
    await Deno.remove(csr);
    await Deno.remove(ext);
    return files;
  }

  /** The service-account token signing key pair (`sa.key`, `sa.pub`). */
  async serviceAccountKeys(): Promise<{ key: string; pub: string }> {
    const key = `${this.dir}/sa.key`;
    const pub = `${this.dir}/sa.pub`;
    await ecKey(key);
    await runner.run(["openssl", "ec", "-in", key, "-pubout", "-out", pub]);
    return { key, pub };
  }
}

async function ecKey(path: string): Promise<void> {
  await runner.run([
    "openssl",
    "ecparam",
    "-name",
    "prime256v1",
    "-genkey",
    "-noout",
    "-out",
    path,
  ]);
  await Deno.chmod(path, 0o600);
}
