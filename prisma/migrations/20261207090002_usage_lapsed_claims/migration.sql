-- AlterTable
ALTER TABLE "UsageRecord" ADD COLUMN     "claim" INTEGER,
ADD COLUMN     "estimated" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex
CREATE UNIQUE INDEX "UsageRecord_runId_claim_attempt_key" ON "UsageRecord"("runId", "claim", "attempt");

-- Charges the attempt of a worker that died mid-attempt, when the recovery sweep takes its run back (see
-- recover() in api/src/orchestrator/orchestrator.ts; the caller holds the run's row under its lapsed lease,
-- in the same transaction). p_ledger: the claim's rows (organizationId, projectId, agentId, runId, claim,
-- attempt, provider, model, token counts, costMicros), all of one run. A row already recorded for the run,
-- claim and attempt adds nothing. What the rows cost is added to the spend of every budget that applies
-- (the organization's and the project's) and taken out of p_holder's lease on it: the dead worker's lease,
-- which still holds the attempt's worst case (its hold) until the sweeper frees it. So spent goes up by what
-- reserved goes down, and `spent + reserved <= limit` holds as when a live worker settles; the lease freed
-- later is only what is left of it. (Should that lease be gone already, the cost is spent anyway: the
-- provider billed it.) Budgets are locked in id order, as everywhere else. Alerts are left to the next
-- settlement on the budget (hub_budget_apply claims every threshold spent has crossed). Returns the cost
-- recorded (0 when every row was already there).
CREATE OR REPLACE FUNCTION hub_budget_charge(p_holder text, p_now timestamp(3), p_ledger jsonb)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  b record;
  v_org uuid;
  v_project uuid;
  v_cost bigint;
  v_lease bigint;
  v_take bigint;
  v_local timestamp;
  v_window timestamp(3);
BEGIN
  SELECT (p_ledger->0->>'organizationId')::uuid, (p_ledger->0->>'projectId')::uuid INTO v_org, v_project;
  IF v_org IS NULL THEN
    RETURN 0;
  END IF;
  PERFORM 1 FROM "Budget" WHERE "organizationId" = v_org AND ("projectId" IS NULL OR "projectId" = v_project) ORDER BY id FOR UPDATE;

  WITH ins AS (
    INSERT INTO "UsageRecord" (id, "organizationId", "projectId", "agentId", "runId", claim, attempt, provider, model,
                               "inputTokens", "cachedInputTokens", "outputTokens", "costMicros", estimated, "createdAt")
    SELECT gen_random_uuid(), x."organizationId", x."projectId", x."agentId", x."runId", x.claim, x.attempt, x.provider::"Provider", x.model,
           x."inputTokens", x."cachedInputTokens", x."outputTokens", x."costMicros", true, p_now
    FROM jsonb_to_recordset(p_ledger) AS x("organizationId" uuid, "projectId" uuid, "agentId" uuid, "runId" uuid, claim integer, attempt integer,
         provider text, model text, "inputTokens" integer, "cachedInputTokens" integer, "outputTokens" integer, "costMicros" bigint)
    ON CONFLICT ("runId", claim, attempt) DO NOTHING
    RETURNING "costMicros")
  SELECT coalesce(sum("costMicros"), 0)::bigint INTO v_cost FROM ins;
  IF v_cost = 0 THEN
    RETURN 0;
  END IF;

  FOR b IN SELECT bu.*, org."timeZone" AS tz FROM "Budget" bu JOIN "Organization" org ON org.id = bu."organizationId"
           WHERE bu."organizationId" = v_org AND (bu."projectId" IS NULL OR bu."projectId" = v_project) ORDER BY bu.id LOOP
    -- The budget's period as of now (as hub_budget_apply rolls it over): an ended one starts again from zero.
    v_local := date_trunc(CASE WHEN b.period = 'DAILY' THEN 'day' ELSE 'month' END, (p_now AT TIME ZONE 'UTC') AT TIME ZONE b.tz);
    v_window := greatest(b."windowStart", (v_local AT TIME ZONE b.tz) AT TIME ZONE 'UTC');
    SELECT "amountMicros" INTO v_lease FROM "BudgetLease" WHERE "budgetId" = b.id AND holder = p_holder;
    v_take := least(coalesce(v_lease, 0), v_cost);
    UPDATE "Budget"
    SET "spentMicros" = CASE WHEN b."windowStart" < v_window THEN 0 ELSE b."spentMicros" END + v_cost,
        "alertedPercent" = CASE WHEN b."windowStart" < v_window THEN 0 ELSE b."alertedPercent" END,
        "windowStart" = v_window, "reservedMicros" = b."reservedMicros" - v_take, "updatedAt" = p_now
    WHERE id = b.id;
    IF v_take > 0 AND v_lease > v_take THEN
      UPDATE "BudgetLease" SET "amountMicros" = v_lease - v_take, "updatedAt" = p_now WHERE "budgetId" = b.id AND holder = p_holder;
    ELSIF v_take > 0 THEN
      DELETE FROM "BudgetLease" WHERE "budgetId" = b.id AND holder = p_holder;
    END IF;
  END LOOP;
  RETURN v_cost;
END;
$$;

-- hub_budget_sweep (see 20261124080501_budget_leases), except that an expired lease whose holder still has
-- RUNNING runs (a process's worker is named after its budget holder, so those are runs whose worker died and
-- that the recovery sweep has not taken back yet) is kept until they are taken back: their attempts' holds
-- are in it, and hub_budget_charge takes what they cost out of it. Freed first, that allowance could be leased
-- by other processes, and charging the dead attempts afterwards would take a budget past its limit.
CREATE OR REPLACE FUNCTION hub_budget_sweep(p_now timestamp(3))
RETURNS integer
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  v_ids uuid[];
  v_freed integer;
BEGIN
  SELECT array_agg(id) INTO v_ids FROM (
    SELECT id FROM "Budget"
    WHERE id IN (SELECT "budgetId" FROM "BudgetLease" WHERE "expiresAt" < p_now)
    ORDER BY id
    FOR UPDATE
  ) locked;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  WITH gone AS (
    DELETE FROM "BudgetLease" l
    WHERE ("budgetId", holder) IN (
      SELECT "budgetId", holder FROM "BudgetLease" x
      WHERE "budgetId" = ANY(v_ids) AND "expiresAt" < p_now
        AND NOT EXISTS (SELECT 1 FROM "AgentRun" r WHERE r.status = 'RUNNING' AND r."leaseOwner" = x.holder)
      FOR UPDATE SKIP LOCKED)
    RETURNING l."budgetId", l."amountMicros"
  ),
  per AS (SELECT "budgetId", sum("amountMicros")::bigint AS amount, count(*)::integer AS n FROM gone GROUP BY "budgetId"),
  freed AS (
    UPDATE "Budget" b SET "reservedMicros" = b."reservedMicros" - per.amount, "updatedAt" = p_now
    FROM per WHERE b.id = per."budgetId"
  )
  SELECT coalesce(sum(n), 0)::integer INTO v_freed FROM per;
  RETURN v_freed;
END;
$$;
