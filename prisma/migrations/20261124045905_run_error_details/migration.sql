-- AlterTable
ALTER TABLE "AgentRun" ADD COLUMN     "errorDetails" JSONB;
