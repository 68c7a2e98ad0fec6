-- AlterTable
ALTER TABLE "AgentRun" ADD COLUMN     "usageEstimated" BOOLEAN NOT NULL DEFAULT false;

-- Runs cut short before the column: their last USAGE event says whether its figures were estimated
-- (a run that succeeded always had the provider's report).
UPDATE "AgentRun" r SET "usageEstimated" = true
WHERE r.status IN ('CANCELLED', 'FAILED', 'BLOCKED') AND (SELECT (e.payload->>'estimated')::boolean FROM "RunEvent" e
       WHERE e."runId" = r.id AND e.type = 'USAGE' ORDER BY e.seq DESC LIMIT 1);
