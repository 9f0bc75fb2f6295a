import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from "node:tls";
import type { Config } from "../../config/schema.js";
import { ConfigError } from "../../config/load.js";
import { DsError } from "../../errors.js";

/**
 * Mutually authenticated TLS between MIMI providers (draft -06 §Transport): our certificate and
 * key, and per peer the CA certificates or pinned certificates that may authenticate it. The
 * certificate must name the peer's domain (RFC 6125, via node's checkServerIdentity).
 */
export interface PeerTrust {
  domain: string;
  caPems: string[];
  cas: X509Certificate[];
  pinned: X509Certificate[];
}

export interface MimiTls {
  certificate: string;
  privateKey: string;
  peers: Map<string, PeerTrust>;
}

function readPem(source: string, key: string): string {
  if (source.includes("-----BEGIN")) return source;
  try {
    return readFileSync(source, "utf8");
  } catch (e) {
    throw new ConfigError(key, `cannot read ${source}: ${(e as Error).message}`);
  }
}

function certs(pem: string, key: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(key, "holds no PEM certificate");
  return blocks.map((b) => new X509Certificate(b));
}

export function loadMimiTls(config: Readonly<Config>): MimiTls | undefined {
  const { mimi, peers } = config.federation;
  if (!mimi.enabled) return undefined;
  const certificate = readPem(mimi.certificate, "federation.mimi.certificate");
  const own = certs(certificate, "federation.mimi.certificate")[0]!;
  if (own.checkHost(config.domain) === undefined) {
    throw new ConfigError("federation.mimi.certificate", `does not name ${config.domain} in its subjectAltName`);
  }
  const trust = new Map<string, PeerTrust>();
  for (const [domain, peer] of Object.entries(peers)) {
    if (peer.protocol !== "mimi" || !peer.tls) continue;
    const key = `federation.peers.${domain}.tls`;
    const caPems = peer.tls.caCertificates.map((s) => readPem(s, `${key}.caCertificates`));
    const pinnedPems = peer.tls.pinnedCertificates.map((s) => readPem(s, `${key}.pinnedCertificates`));
    trust.set(domain, {
      domain,
      caPems: [...caPems, ...pinnedPems],
      cas: caPems.flatMap((p) => certs(p, `${key}.caCertificates`)),
      pinned: pinnedPems.flatMap((p) => certs(p, `${key}.pinnedCertificates`)),
    });
  }
  return { certificate, privateKey: readPem(mimi.privateKey, "federation.mimi.privateKey"), peers: trust };
}

/** Options of the MIMI https listener: every peer's trust anchors, client certificates requested. */
export function serverTlsOptions(tls: MimiTls) {
  return {
    cert: tls.certificate,
    key: tls.privateKey,
    ca: [...tls.peers.values()].flatMap((p) => p.caPems),
    requestCert: true,
    // Checked per request (below), so a refusal says why instead of a bare handshake failure.
    rejectUnauthorized: false,
    minVersion: "TLSv1.2" as const,
  };
}

function chainOf(cert: PeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  let c: PeerCertificate | undefined = cert;
  const seen = new Set<string>();
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

/** Is `chain` (leaf first) trusted for `peer`: a pinned leaf, or a chain node verified by node that is one of the peer's CAs. */
export function trustedFor(peer: PeerTrust, chain: X509Certificate[], chainVerified: boolean): boolean {
  const leaf = chain[0];
  if (!leaf) return false;
  if (peer.pinned.some((p) => p.fingerprint256 === leaf.fingerprint256)) return true;
  if (!chainVerified) return false;
  return chain.some((c) =>
    peer.cas.some((ca) => ca.fingerprint256 === c.fingerprint256 || (c.checkIssued(ca) && c.verify(ca.publicKey))),
  );
}

const FROM = /^mimi@([a-z0-9]([a-z0-9.-]*[a-z0-9])?)$/;

/**
 * Authenticates an inbound MIMI request: a client certificate, a `From: mimi@<domain>` of a
 * configured MIMI peer, a certificate trusted for that peer and naming its domain.
 */
export function authenticatePeer(tls: MimiTls, socket: TLSSocket, from: string | undefined): string {
  const cert = socket.getPeerCertificate(true);
  if (!cert || !cert.raw) {
    throw new DsError("unauthenticated", "a MIMI request needs a client certificate", { reason: "no_client_certificate" });
  }
  const m = FROM.exec((from ?? "").trim().toLowerCase());
  if (!m) throw new DsError("unauthenticated", "the From header must be mimi@<domain>", { reason: "bad_from" });
  const domain = m[1]!;
  const peer = tls.peers.get(domain);
  if (!peer) throw new DsError("forbidden", `${domain} is not a configured MIMI peer`, { reason: "unknown_peer" });
  if (!trustedFor(peer, chainOf(cert), socket.authorized)) {
    throw new DsError("unauthenticated", `the client certificate is not trusted for ${domain}`, {
      reason: "untrusted_certificate",
    });
  }
  if (checkServerIdentity(domain, cert) !== undefined) {
    throw new DsError("unauthenticated", `the client certificate does not name ${domain}`, {
      reason: "certificate_domain_mismatch",
    });
  }
  return domain;
}

/** undici connect options toward one peer: our certificate, the peer's anchors, its domain checked (not the URL's host). */
export function clientTlsOptions(tls: MimiTls, domain: string) {
  const peer = tls.peers.get(domain);
  if (!peer) throw new DsError("peer_unknown", `${domain} is not a configured MIMI peer`);
  return {
    cert: tls.certificate,
    key: tls.privateKey,
    ca: peer.caPems,
    rejectUnauthorized: true,
    servername: domain,
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      const named = checkServerIdentity(domain, cert);
      if (named) return named;
      return trustedFor(peer, chainOf(cert), true) ? undefined : new Error(`certificate is not trusted for ${domain}`);
    },
  };
}
