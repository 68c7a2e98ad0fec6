-- An archived project is read-only, as the UI says ("its agents and past runs stay readable"): starting a
-- run of one of its agents is refused like starting an archived agent. hub_start_run reads the project's
-- archivedAt with the agent's (the same primary-key join its row already needs) and raises
--   HB006  the agent's project is archived
-- Everything else is as in 20261205130000_start_run_checks.
CREATE OR REPLACE FUNCTION hub_start_run(
  p_id uuid, p_org uuid, p_project uuid, p_agent uuid, p_user uuid, p_roles text[],
  p_input text, p_idempotency_key text, p_parent uuid, p_now timestamp(3),
  p_limit_key text, p_limit_points integer, p_limit_ms bigint, p_now_ms bigint,
  p_worker text, p_cap integer, p_lease_ms integer)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  v_role text;
  v_archived boolean;
  v_agent jsonb;
  v_points integer;
  v_expire bigint;
  v_claimed boolean := p_worker IS NOT NULL;
  v_project_archived boolean;
BEGIN
  SELECT m.role::text, a."archivedAt" IS NOT NULL, p."archivedAt" IS NOT NULL,
         jsonb_build_object('provider', a.provider, 'model', a.model, 'systemPrompt', a."systemPrompt", 'temperature', a.temperature,
                            'maxOutputTokens', a."maxOutputTokens", 'fallbackChain', a."fallbackChain")
    INTO v_role, v_archived, v_project_archived, v_agent
    FROM "Agent" a JOIN "Membership" m ON m."organizationId" = a."organizationId" AND m."userId" = p_user
         JOIN "Project" p ON p.id = a."projectId"
   WHERE a.id = p_agent AND a."organizationId" = p_org AND a."projectId" = p_project;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agent not found' USING ERRCODE = 'HB002';
  END IF;
  IF NOT v_role = ANY (p_roles) THEN
    RAISE EXCEPTION 'role % may not start runs', v_role USING ERRCODE = 'HB003', DETAIL = v_role;
  END IF;
  IF v_archived THEN
    RAISE EXCEPTION 'agent is archived' USING ERRCODE = 'HB004';
  END IF;
  IF v_project_archived THEN
    RAISE EXCEPTION 'project is archived' USING ERRCODE = 'HB006';
  END IF;

  IF v_claimed AND NOT hub_org_has_room(p_org, p_cap) THEN
    RAISE EXCEPTION 'organization % is at its concurrency cap', p_org USING ERRCODE = 'HB001';
  END IF;

  INSERT INTO "AgentRun" (id, "organizationId", "projectId", "agentId", "createdById", input, "idempotencyKey", "parentRunId",
                          status, attempts, "leaseOwner", "leaseExpiresAt", "startedAt", "lastSeq", "createdAt", "queuedAt")
  VALUES (p_id, p_org, p_project, p_agent, p_user, p_input, p_idempotency_key, p_parent,
          CASE WHEN v_claimed THEN 'RUNNING' ELSE 'QUEUED' END::"RunStatus", CASE WHEN v_claimed THEN 1 ELSE 0 END, p_worker,
          CASE WHEN v_claimed THEN p_now + p_lease_ms * interval '1 millisecond' END, CASE WHEN v_claimed THEN p_now END,
          CASE WHEN v_claimed THEN 2 ELSE 1 END, p_now, p_now)
  ON CONFLICT ("organizationId", "idempotencyKey") DO NOTHING;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('outcome', 'exists', 'role', v_role);
  END IF;

  IF p_limit_key IS NOT NULL THEN
    INSERT INTO "rate_limit"."counters" AS c (key, points, expire) VALUES (p_limit_key, 1, p_now_ms + p_limit_ms)
    ON CONFLICT (key) DO UPDATE
       SET points = CASE WHEN c.expire <= p_now_ms THEN 1 ELSE c.points + 1 END,
           expire = CASE WHEN c.expire <= p_now_ms THEN p_now_ms + p_limit_ms ELSE c.expire END
    RETURNING c.points, c.expire INTO v_points, v_expire;
    IF v_points > p_limit_points THEN
      RAISE EXCEPTION 'run rate limit reached' USING ERRCODE = 'HB005', DETAIL = greatest(v_expire - p_now_ms, 0)::text;
    END IF;
  END IF;

  INSERT INTO "RunEvent" ("runId", seq, type, payload, "createdAt") VALUES (p_id, 1, 'STATUS', '{"status":"QUEUED"}'::jsonb, p_now);
  IF NOT v_claimed THEN
    RETURN jsonb_build_object('outcome', 'queued', 'role', v_role);
  END IF;
  INSERT INTO "RunEvent" ("runId", seq, type, payload, "createdAt")
  VALUES (p_id, 2, 'STATUS', jsonb_build_object('status', 'RUNNING', 'attempt', 1, 'worker', p_worker), p_now);
  RETURN jsonb_build_object(
    'outcome', 'claimed',
    'role', v_role,
    'runningStored', true,
    'run', jsonb_build_object(
      'id', p_id, 'organizationId', p_org, 'projectId', p_project, 'agentId', p_agent,
      'input', p_input, 'attempts', 1, 'lastSeq', 2, 'cancelRequested', false),
    'agent', v_agent);
END;
$$;
