-- Who cancelled a run (null: not cancelled by a person, or their account was deleted since), shown beside
-- who started it. Indexed as "createdById" is: deleting an account sets it to null in every run it cancelled.
-- AlterTable
ALTER TABLE "AgentRun" ADD COLUMN     "cancelledById" UUID;

-- CreateIndex
CREATE INDEX "AgentRun_cancelledById_idx" ON "AgentRun"("cancelledById");

-- AddForeignKey
ALTER TABLE "AgentRun" ADD CONSTRAINT "AgentRun_cancelledById_fkey" FOREIGN KEY ("cancelledById") REFERENCES "User"("id") ON DELETE SET NULL ON UPDATE CASCADE;
