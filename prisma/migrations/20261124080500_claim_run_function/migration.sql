-- Claiming a queued run in one round trip. A plpgsql function because the per-organization cap needs
-- the count to be taken AFTER the organization's advisory lock is held: in READ COMMITTED each statement
-- inside a VOLATILE function gets a fresh snapshot, so the count sees every claim committed before the
-- lock was granted (a single SQL statement would count from a snapshot taken before it waited).
-- The lock is transaction-scoped: held until the calling statement commits.
CREATE OR REPLACE FUNCTION hub_claim_run(p_run uuid, p_worker text, p_cap integer, p_lease_ms integer, p_now timestamp(3))
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  v_org uuid;
  v_running integer;
  v_run "AgentRun";
BEGIN
  SELECT "organizationId" INTO v_org FROM "AgentRun" WHERE id = p_run AND status = 'QUEUED';
  IF NOT FOUND THEN
    RETURN jsonb_build_object('outcome', 'gone');
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(v_org::text, 0));
  SELECT count(*) INTO v_running FROM "AgentRun" WHERE "organizationId" = v_org AND status = 'RUNNING';
  IF v_running >= p_cap THEN
    RETURN jsonb_build_object('outcome', 'busy');
  END IF;
  UPDATE "AgentRun"
     SET status = 'RUNNING', "leaseOwner" = p_worker, "leaseExpiresAt" = p_now + p_lease_ms * interval '1 millisecond',
         "startedAt" = p_now, attempts = attempts + 1
   WHERE id = p_run AND status = 'QUEUED'
  RETURNING * INTO v_run;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('outcome', 'gone');
  END IF;
  RETURN jsonb_build_object(
    'outcome', 'claimed',
    'run', jsonb_build_object(
      'id', v_run.id, 'organizationId', v_run."organizationId", 'projectId', v_run."projectId", 'agentId', v_run."agentId",
      'input', v_run.input, 'attempts', v_run.attempts, 'lastSeq', v_run."lastSeq", 'cancelRequested', v_run."cancelRequested"),
    'agent', (SELECT jsonb_build_object(
      'provider', a.provider, 'model', a.model, 'systemPrompt', a."systemPrompt", 'temperature', a.temperature,
      'maxOutputTokens', a."maxOutputTokens", 'fallbackChain', a."fallbackChain")
      FROM "Agent" a WHERE a.id = v_run."agentId"));
END;
$$;
