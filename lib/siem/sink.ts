/**
 * Where OCSF events go. `send` resolves once the sink has taken the batch
 * (written to stdout or the file, written to the syslog connection, or
 * answered 2xx over HTTP) and rejects otherwise; the exporter retries a
 * rejected batch, so a sink never retries by itself.
 */
export interface SiemSink {
  readonly name: string;
  send(events: readonly Record<string, unknown>[]): Promise<void>;
  close(): Promise<void>;
}
