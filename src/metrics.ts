import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** One registry per DeliveryService, so several DSs in one process (tests, demo) keep apart. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: "mlsfg_http_request_duration_seconds",
    help: "HTTP request latency by route",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly commits = new Counter({
    name: "mlsfg_commits_total",
    help: "Commit submissions by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly messages = new Counter({
    name: "mlsfg_messages_total",
    help: "Application/proposal submissions",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly claims = new Counter({
    name: "mlsfg_claims_total",
    help: "KeyPackage claims by result",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly errors = new Counter({
    name: "mlsfg_errors_total",
    help: "Error answers by code",
    labelNames: ["code"] as const,
    registers: [this.registry],
  });
  readonly s2sRequests = new Counter({
    name: "mlsfg_s2s_requests_total",
    help: "Outbound federation requests",
    labelNames: ["peer", "path"] as const,
    registers: [this.registry],
  });
  readonly delivered = new Counter({
    name: "mlsfg_outbox_delivered_total",
    help: "Entries delivered to peers",
    labelNames: ["peer"] as const,
    registers: [this.registry],
  });
  readonly refused = new Counter({
    name: "mlsfg_outbox_refused_total",
    help: "Entries a peer refused permanently (set aside)",
    labelNames: ["peer"] as const,
    registers: [this.registry],
  });
  readonly deliverRefused = new Counter({
    name: "mlsfg_deliver_refused_total",
    help: "Delivered entries this DS refused (per-entry refusals in deliver answers), by sending hub",
    labelNames: ["peer"] as const,
    registers: [this.registry],
  });
  readonly deliveryLag = new Histogram({
    name: "mlsfg_outbox_delivery_lag_seconds",
    help: "Age of the oldest entry in a delivered outbox batch",
    labelNames: ["peer"] as const,
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });
  readonly outboxDepth = new Gauge({
    name: "mlsfg_outbox_depth",
    help: "Entries waiting per peer",
    labelNames: ["peer"] as const,
    registers: [this.registry],
  });
  readonly outboxAge = new Gauge({
    name: "mlsfg_outbox_oldest_age_seconds",
    help: "Age of the oldest waiting entry per peer",
    labelNames: ["peer"] as const,
    registers: [this.registry],
  });
  readonly connectionsDropped = new Counter({
    name: "mlsfg_connections_dropped_total",
    help: "Connections closed at accept because limits.maxConnections were open",
    registers: [this.registry],
  });
  readonly commitConflicts = new Counter({
    name: "mlsfg_commit_conflicts_total",
    help: "Equivocations detected by commit gossip",
    registers: [this.registry],
  });

  constructor(withDefaults: boolean) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry });
  }
}
