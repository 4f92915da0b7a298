/**
 * Structured logging with pino. One root logger per process; components take
 * children (`logger.child({ component: "executor" })`). Secrets are redacted
 * by path before a line is written, so a careless `log.info({ req })` cannot
 * leak a key.
 *
 * @example
 * const log = createLogger({ name: "registry" });
 * log.info({ agentId }, "agent registered");
 */
import { type Logger, type LoggerOptions, pino } from "pino";
import { settings } from "../config/settings.js";

export type { Logger } from "pino";

/** Paths whose values never reach a log line. */
export const redactPaths = [
  "password",
  "secret",
  "token",
  "apiKey",
  "authorization",
  "privateKey",
  "key",
  "*.password",
  "*.secret",
  "*.token",
  "*.apiKey",
  "*.api_key",
  "*.authorization",
  "*.Authorization",
  "*.privateKey",
  "*.cookie",
  "headers.authorization",
  "headers.cookie",
  "*.headers.authorization",
  "*.headers.cookie",
  'metadata["authorization"]',
  'metadata["x-api-key"]',
  "*.databaseUrl",
  "*.vaultToken",
];

export interface CreateLoggerOptions {
  /** Component or process name, e.g. "executor". */
  name: string;
  /** Log level; defaults to LOG_LEVEL, else "info" ("silent" under vitest unless LOG_LEVEL is set). */
  level?: string;
  /** Where lines go; defaults to stdout. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const level =
    options.level ?? settings.logLevel.read() ?? (process.env.VITEST ? "silent" : "info");
  const config: LoggerOptions = {
    name: options.name,
    level,
    redact: { paths: redactPaths, censor: "[REDACTED]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
