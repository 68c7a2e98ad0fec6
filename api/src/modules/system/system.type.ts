import { builder } from '../../schema/builder.js';
import { checkHealth, type HealthReport } from './system.service.js';

const DatabaseKind = builder.enumType('DatabaseKind', {
  values: { PGLITE: { value: 'pglite', description: 'Embedded PGlite (zero setup)' }, POSTGRESQL: { value: 'postgresql' } } as const,
});

const Health = builder.objectRef<HealthReport>('Health').implement({
  description: 'Liveness of the API process and its database.',
  fields: (t) => ({
    ok: t.exposeBoolean('ok'),
    database: t.field({ type: DatabaseKind, resolve: (h) => h.database }),
    databaseLatencyMs: t.exposeFloat('databaseLatencyMs'),
    version: t.exposeString('version'),
    uptimeSeconds: t.exposeInt('uptimeSeconds'),
    time: t.expose('time', { type: 'DateTime' }),
  }),
});

builder.queryField('health', (t) =>
  t.field({ type: Health, description: 'Public health report; needs no sign-in.', resolve: (_root, _args, ctx) => checkHealth(ctx) }),
);
