-- Starting a run in ONE round trip, checks included: hub_start_run now also reads the caller's role in
-- the agent's organization, refuses archived agents, and counts the organization's run rate limit, so the
-- API's startRun makes one statement instead of three (agent and role; rate-limit counter; creation).
-- A run it claims is inserted RUNNING with its RUNNING event (seq 2) next to the QUEUED one, so the worker
-- starts the provider call with nothing left to write first.
--
-- p_org and p_project are where the caller believes the agent lives (an agent never moves, so the API
-- caches it); the agent is found only where they say, so a wrong belief is "not found", never a run
-- created elsewhere. Raised, each rolling the whole statement back:
--   HB002  no such agent there, or the caller is not a member of its organization (the API says NotFound
--          for both: no existence leak)
--   HB003  the caller's role is not in p_roles; DETAIL is the role (the API records the denial)
--   HB004  the agent is archived
--   HB005  the organization's run rate limit is spent; DETAIL is the milliseconds until it refills
--   HB001  as before: a claim (p_worker given) found the organization at its concurrency cap
--          (hub_org_has_room, which hub_claim_run now uses too)
-- The rate limit (p_limit_key non-NULL, when the API's limiters keep their counters in PostgreSQL) is the
-- row of the rate limiter's own table ("rate_limit"."counters": key, points, expire in epoch ms), updated
-- as the limiter updates it, so both read and write the same budget. It is counted only for a run that is
-- actually created (an idempotent replay is free), and a refused start counts nothing: the increment rolls
-- back with the rest.
-- Returns {"outcome":"exists"} when the idempotency key is taken (nothing written), {"outcome":"queued"}
-- without p_worker (the caller queues the run in the same transaction), or the claim in hub_claim_run's
-- shape; every answer carries the caller's role.
DROP FUNCTION hub_start_run(uuid, uuid, uuid, uuid, uuid, text, text, uuid, timestamp(3), text, integer, integer);

-- The organization's concurrency cap, in one place for every claim: takes the organization's advisory
-- lock (held until the calling statement commits), then counts its RUNNING runs. A VOLATILE plpgsql
-- function, so in READ COMMITTED the count gets a fresh snapshot taken after the lock was granted and
-- sees every claim committed before it.
CREATE FUNCTION hub_org_has_room(p_org uuid, p_cap integer)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(p_org::text, 0));
  RETURN (SELECT count(*) FROM "AgentRun" WHERE "organizationId" = p_org AND status = 'RUNNING') < p_cap;
END;
$$;

-- hub_claim_run as before, with its cap check through hub_org_has_room.
CREATE OR REPLACE FUNCTION hub_claim_run(p_run uuid, p_worker text, p_cap integer, p_lease_ms integer, p_now timestamp(3))
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  v_org uuid;
  v_run "AgentRun";
BEGIN
  SELECT "organizationId" INTO v_org FROM "AgentRun" WHERE id = p_run AND status = 'QUEUED';
  IF NOT FOUND THEN
    RETURN jsonb_build_object('outcome', 'gone');
  END IF;
  IF NOT hub_org_has_room(v_org, p_cap) THEN
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

CREATE FUNCTION hub_start_run(
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
BEGIN
  SELECT m.role::text, a."archivedAt" IS NOT NULL,
         jsonb_build_object('provider', a.provider, 'model', a.model, 'systemPrompt', a."systemPrompt", 'temperature', a.temperature,
                            'maxOutputTokens', a."maxOutputTokens", 'fallbackChain', a."fallbackChain")
    INTO v_role, v_archived, v_agent
    FROM "Agent" a JOIN "Membership" m ON m."organizationId" = a."organizationId" AND m."userId" = p_user
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
