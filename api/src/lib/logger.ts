import { pino, type Logger } from 'pino';

export type { Logger };

/** Structured JSON logs. Secrets and credentials are redacted wherever they appear in a log object. */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service: 'orchestration-hub' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        '*.password',
        '*.token',
        '*.apiKey',
        '*.secret',
        'password',
        'token',
      ],
      censor: '[redacted]',
    },
  });
}
