import { accessSync, constants } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'prisma/config';

// The Prisma CLI downloads a native schema engine before most commands, which fails on machines
// without internet access. It skips the download when PRISMA_SCHEMA_ENGINE_BINARY names an
// existing executable, and `prisma generate`/`validate`/`format` never run it, so a stub suffices.
// Migrations are handled by scripts/db.ts (pnpm db:migrate | db:deploy | db:status).
if (!process.env.PRISMA_SCHEMA_ENGINE_BINARY) {
  const candidates = [fileURLToPath(new URL('./scripts/prisma-engine-stub.sh', import.meta.url)), '/bin/true'];
  const executable = candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (executable) process.env.PRISMA_SCHEMA_ENGINE_BINARY = executable;
}

export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
  // Only migrate/introspect commands read this; leaving it unset keeps generate and validate
  // working without a database (the app falls back to embedded PGlite when DATABASE_URL is unset).
  datasource: { url: process.env.DATABASE_URL },
});
