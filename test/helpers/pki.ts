import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A throwaway PKI made with the openssl CLI for mTLS tests: CAs and leaf certificates naming a domain. */
export interface KeyPair {
  cert: string;
  key: string;
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), "mlsfg-pki-"));
  private n = 0;

  private run(args: string[]): void {
    execFileSync("openssl", args, { stdio: "pipe" });
  }

  ca(name: string): KeyPair {
    const base = join(this.dir, `ca-${this.n++}`);
    this.run([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${base}.key`,
      "-out",
      `${base}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${name} test CA`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    return { cert: readFileSync(`${base}.crt`, "utf8"), key: readFileSync(`${base}.key`, "utf8") };
  }

  /** A leaf for `domain` (subjectAltName DNS) issued by `ca`, usable as TLS server and client certificate. */
  leaf(ca: KeyPair, domain: string): KeyPair {
    const base = join(this.dir, `leaf-${this.n++}`);
    writeFileSync(`${base}.ca.crt`, ca.cert);
    writeFileSync(`${base}.ca.key`, ca.key);
    writeFileSync(
      `${base}.ext`,
      `subjectAltName=DNS:${domain}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    this.run([
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${base}.key`,
      "-out",
      `${base}.csr`,
      "-subj",
      `/CN=${domain}`,
    ]);
    this.run([
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      `${base}.ca.crt`,
      "-CAkey",
      `${base}.ca.key`,
      "-CAcreateserial",
      "-out",
      `${base}.crt`,
      "-days",
      "2",
      "-extfile",
      `${base}.ext`,
    ]);
    return { cert: readFileSync(`${base}.crt`, "utf8"), key: readFileSync(`${base}.key`, "utf8") };
  }

  /** A self-signed certificate for `domain`, to be pinned by its peers. */
  selfSigned(domain: string): KeyPair {
    const base = join(this.dir, `self-${this.n++}`);
    this.run([
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${base}.key`,
      "-out",
      `${base}.crt`,
      "-days",
      "2",
      "-subj",
      `/CN=${domain}`,
      "-addext",
      `subjectAltName=DNS:${domain}`,
      "-addext",
      "extendedKeyUsage=serverAuth,clientAuth",
    ]);
    return { cert: readFileSync(`${base}.crt`, "utf8"), key: readFileSync(`${base}.key`, "utf8") };
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
