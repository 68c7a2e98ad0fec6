-- Creating a run in one round trip: the run, its first event (QUEUED) and, when the caller names a worker
-- with a free slot, its claim by that worker (hub_claim_run: the organization's cap is checked under its
-- advisory lock as for any claim). Returns NULL when the organization already has a run with this
-- idempotency key (nothing is written), {"outcome":"queued"} when no worker was named (the caller queues
-- the run in the same transaction), or the claim. A claim that finds the organization at its cap raises
-- SQLSTATE HB001 instead, so the whole statement rolls back and the caller creates the run again through the queue.
CREATE OR REPLACE FUNCTION hub_start_run(
  p_id uuid, p_org uuid, p_project uuid, p_agent uuid, p_created_by uuid, p_input text, p_idempotency_key text,
  p_parent uuid, p_now timestamp(3), p_worker text, p_cap integer, p_lease_ms integer)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  v_claim jsonb;
BEGIN
  INSERT INTO "AgentRun" (id, "organizationId", "projectId", "agentId", "createdById", input, "idempotencyKey", "parentRunId", "lastSeq", "createdAt", "queuedAt")
  VALUES (p_id, p_org, p_project, p_agent, p_created_by, p_input, p_idempotency_key, p_parent, 1, p_now, p_now)
  ON CONFLICT ("organizationId", "idempotencyKey") DO NOTHING;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  INSERT INTO "RunEvent" ("runId", seq, type, payload, "createdAt") VALUES (p_id, 1, 'STATUS', '{"status":"QUEUED"}'::jsonb, p_now);
  IF p_worker IS NULL THEN
    RETURN jsonb_build_object('outcome', 'queued');
  END IF;
  v_claim := hub_claim_run(p_id, p_worker, p_cap, p_lease_ms, p_now);
  IF v_claim->>'outcome' <> 'claimed' THEN
    RAISE EXCEPTION 'organization % is at its concurrency cap', p_org USING ERRCODE = 'HB001';
  END IF;
  RETURN v_claim;
END;
$$;
