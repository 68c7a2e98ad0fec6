#!/bin/sh
# Stand-in for Prisma's native schema engine, which the Prisma CLI would otherwise download (this
# project's machines cannot). prisma.config.ts points PRISMA_SCHEMA_ENGINE_BINARY here so that
# `prisma generate`/`validate`/`format`, which never run the engine, work offline. Migrations go
# through scripts/db.ts instead, which drives the same engine compiled to WebAssembly.
case "$1" in
  --version) echo "schema-engine-cli offline-stub (use pnpm db:migrate, db:deploy, db:status)"; exit 0 ;;
esac
# The CLI skips the first stderr line and parses the rest as the engine's JSON log lines.
echo 'offline schema engine stub' >&2
echo '{"level":"ERROR","fields":{"message":"The native Prisma schema engine is not installed (offline machine). Use pnpm db:migrate --name <name>, pnpm db:deploy or pnpm db:status (scripts/db.ts)."},"target":"schema_engine"}' >&2
exit 1
