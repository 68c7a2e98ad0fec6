-- Claims of a run that their worker handed back to the queue as it shut down (SIGTERM, a deploy). They
-- still count in "attempts" (every claim does: it fences the claim's writes), but not as lost workers:
-- the recovery sweep fails a run after MAX_WORKER_ATTEMPTS claims whose worker died, attempts - handovers.
-- AlterTable
ALTER TABLE "AgentRun" ADD COLUMN     "handovers" INTEGER NOT NULL DEFAULT 0;
