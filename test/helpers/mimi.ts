import { freePorts } from "./global-setup.js";
import { TestPki, type KeyPair } from "./pki.js";
import { startProvider, type Provider } from "./providers.js";

export type Binding = "fedgate" | "mimi";

export interface MimiProvider extends Provider {
  ca: KeyPair;
  tls: KeyPair;
  mimiUrl: string;
}

/**
 * Providers on loopback where each pair speaks the binding `link(a, b)` chooses. Every provider
 * gets its own throwaway CA and a certificate naming its domain; MIMI peers trust each other's CA.
 */
export async function startMixedFederation(
  domains: string[],
  link: (a: string, b: string) => Binding,
  pki = new TestPki(),
  overrides: (domain: string) => Record<string, unknown> = () => ({}),
  /** How each provider's certificate is trusted by its MIMI peers: issued by its CA, or self-signed and pinned. */
  trust: (domain: string) => "ca" | "pinned" = () => "ca",
): Promise<{ providers: MimiProvider[]; pki: TestPki }> {
  const all = await freePorts(domains.length * 2);
  const ports = all.slice(0, domains.length);
  const mimiPorts = all.slice(domains.length);
  const cas = domains.map((d) => pki.ca(d));
  const leaves = domains.map((d, i) => (trust(d) === "pinned" ? pki.selfSigned(d) : pki.leaf(cas[i]!, d)));
  const providers = await Promise.all(
    domains.map(async (domain, i) => {
      const peers = Object.fromEntries(
        domains.flatMap((d, j) => {
          if (d === domain) return [];
          return link(domain, d) === "mimi"
            ? [
                [
                  d,
                  {
                    url: `https://127.0.0.1:${mimiPorts[j]}`,
                    protocol: "mimi",
                    tls: trust(d) === "pinned" ? { pinnedCertificates: [leaves[j]!.cert] } : { caCertificates: [cas[j]!.cert] },
                  },
                ],
              ]
            : [[d, { url: `http://127.0.0.1:${ports[j]}` }]];
        }),
      );
      const extra = overrides(domain);
      const fed = (extra.federation as Record<string, unknown> | undefined) ?? {};
      const p = await startProvider(domain, {
        ...extra,
        port: ports[i],
        federation: {
          outbox: { batchSize: 100, retryBaseMs: 50, retryMaxMs: 2000, pollMs: 200 },
          ...fed,
          peers,
          mimi: {
            enabled: true,
            host: "127.0.0.1",
            port: mimiPorts[i],
            certificate: leaves[i]!.cert,
            privateKey: leaves[i]!.key,
            publicUrl: `https://127.0.0.1:${mimiPorts[i]}`,
          },
        },
      });
      return { ...p, ca: cas[i]!, tls: leaves[i]!, mimiUrl: p.ds.mimiUrl! };
    }),
  );
  return { providers, pki };
}
