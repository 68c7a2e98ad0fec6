-- hub_budget_apply (see 20261207130000_usage_worker_row_replaces_estimate), when an organization is deleted
-- while one of its runs is settling. The ledger row of that run (deleted with its organization) and an audit
-- row for that organization failed their foreign keys, and with them the whole statement: every other
-- settlement, reservation and audit row of the group commit, of every organization, failed too (their runs
-- ended INTERNAL, their attempts off the ledger and out of their budgets' spend).
--
-- Now a ledger row is written only for a run that still exists, and an audit row only for an organization that
-- still exists, each locked (FOR KEY SHARE, as its foreign key check would) so that a deletion committing
-- meanwhile either waits for this statement or is seen by it. The deleted organization's budgets are gone
-- with it (its ops are skipped as before). Everything else is as in 20261207130000.
CREATE OR REPLACE FUNCTION hub_budget_apply(p_holder text, p_now timestamp(3), p_expires timestamp(3), p_ops jsonb, p_waiters jsonb,
                                            p_ledger jsonb, p_audit jsonb)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
  o record;
  b record;
  w record;
  n integer := 0;
  i integer;
  k integer;
  v_fits boolean;
  v_short integer;
  v_admitted jsonb := '[]'::jsonb;
  v_refused jsonb := '[]'::jsonb;
  v_out jsonb := '[]'::jsonb;
  v_local timestamp;
  v_base bigint;
  v_lease2 bigint;
  v_free2 bigint;
  v_extra bigint;
  v_percent bigint;
  v_alert integer;
  v_alert_details jsonb;
  v_alerts jsonb;
  v_threshold integer;
  v_exact_since timestamp(3);
  v_loose integer;
  v_credits jsonb := '[]'::jsonb;
  v_credit bigint;
  v_credit_spent bigint;
  -- Per budget, by position in p_ops.
  a_op jsonb[] := '{}';
  a_found boolean[] := '{}';
  a_org uuid[] := '{}';
  a_project uuid[] := '{}';
  a_period text[] := '{}';
  a_limit bigint[] := '{}';
  a_spent bigint[] := '{}';
  a_reserved bigint[] := '{}';
  a_alerted integer[] := '{}';
  a_window timestamp(3)[] := '{}';
  a_resets text[] := '{}';
  a_lease0 bigint[] := '{}';
  a_lease1 bigint[] := '{}';
  a_exact_since timestamp(3)[] := '{}';
  a_room bigint[] := '{}';
  a_use bigint[] := '{}';
  a_short boolean[] := '{}';
BEGIN
  PERFORM 1 FROM "Budget"
  WHERE id IN (SELECT x.id FROM jsonb_to_recordset(p_ops) AS x(id uuid))
  ORDER BY id
  FOR UPDATE;

  -- 0. The ledger. Estimated rows the settlements replace, with what they cost: credited back below.
  -- Almost never: only a worker stalled past its lease finds its attempt estimated. One index lookup per row.
  IF EXISTS (SELECT 1 FROM jsonb_to_recordset(p_ledger) AS x("runId" uuid, claim integer, attempt integer)
             JOIN "UsageRecord" u ON u."runId" = x."runId" AND u.claim = x.claim AND u.attempt = x.attempt
             WHERE u.estimated) THEN
    WITH x AS (
      SELECT * FROM jsonb_to_recordset(p_ledger) AS x("runId" uuid, claim integer, attempt integer, provider text, model text,
           "inputTokens" integer, "cachedInputTokens" integer, "outputTokens" integer, "costMicros" bigint)
      WHERE x.claim IS NOT NULL
    ), old AS (
      SELECT u.id, u."organizationId", u."projectId", u."costMicros", u."createdAt"
      FROM "UsageRecord" u JOIN x ON u."runId" = x."runId" AND u.claim = x.claim AND u.attempt = x.attempt
      WHERE u.estimated
      FOR UPDATE OF u
    ), replaced AS (
      UPDATE "UsageRecord" u
      SET provider = x.provider::"Provider", model = x.model, "inputTokens" = x."inputTokens", "cachedInputTokens" = x."cachedInputTokens",
          "outputTokens" = x."outputTokens", "costMicros" = x."costMicros", estimated = false, "createdAt" = p_now
      FROM old, x
      WHERE u.id = old.id AND u."runId" = x."runId" AND u.claim = x.claim AND u.attempt = x.attempt
      RETURNING u."runId", old."organizationId", old."projectId", old."costMicros" AS cost, old."createdAt"
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('runId', r."runId", 'organizationId', r."organizationId", 'projectId', r."projectId",
                                                 'cost', r.cost::text, 'createdAt', r."createdAt")), '[]'::jsonb)
    INTO v_credits FROM replaced r;
    -- A run that has ended meanwhile (taken back and run again to its end by another claim) summed its ledger
    -- with the estimate in it: its cost is summed again. (A run still going sums it when it ends.)
    IF v_credits <> '[]'::jsonb THEN
      UPDATE "AgentRun" r SET "costMicros" = (SELECT coalesce(sum(u."costMicros"), 0) FROM "UsageRecord" u WHERE u."runId" = r.id)
      WHERE r.id IN (SELECT (c->>'runId')::uuid FROM jsonb_array_elements(v_credits) c)
        AND r."finishedAt" IS NOT NULL AND r."errorCode" IS DISTINCT FROM 'INTERNAL';
    END IF;
  END IF;

  INSERT INTO "UsageRecord" (id, "organizationId", "projectId", "agentId", "runId", claim, attempt, provider, model,
                             "inputTokens", "cachedInputTokens", "outputTokens", "costMicros", "createdAt")
  SELECT gen_random_uuid(), x."organizationId", x."projectId", x."agentId", x."runId", x.claim, x.attempt, x.provider::"Provider", x.model,
         x."inputTokens", x."cachedInputTokens", x."outputTokens", x."costMicros", p_now
  FROM jsonb_to_recordset(p_ledger) AS x("organizationId" uuid, "projectId" uuid, "agentId" uuid, "runId" uuid, claim integer, attempt integer,
       provider text, model text, "inputTokens" integer, "cachedInputTokens" integer, "outputTokens" integer, "costMicros" bigint)
  JOIN "AgentRun" r ON r.id = x."runId"
  FOR KEY SHARE OF r
  ON CONFLICT ("runId", claim, attempt) DO NOTHING;

  -- 1. Each budget as it stands once the settlements are in.
  FOR o IN SELECT e.value AS op FROM jsonb_array_elements(p_ops) e LOOP
    n := n + 1;
    a_op[n] := o.op;
    -- The lease row needs no lock of its own: whoever changes it holds its budget's lock.
    SELECT bu.*, org."timeZone" AS tz, coalesce(l."amountMicros", 0) AS lease, l."exactSince" AS "leaseExactSince" INTO b
    FROM "Budget" bu
    JOIN "Organization" org ON org.id = bu."organizationId"
    LEFT JOIN "BudgetLease" l ON l."budgetId" = bu.id AND l.holder = p_holder
    WHERE bu.id = (o.op->>'id')::uuid;
    a_found[n] := FOUND;
    a_use[n] := 0;
    a_short[n] := false;
    CONTINUE WHEN NOT FOUND; -- removed meanwhile

    -- Periods are calendar days and months on the organization's wall clock. One that has ended rolls over:
    -- nothing spent yet; what is held stays held.
    v_local := date_trunc(CASE WHEN b.period = 'DAILY' THEN 'day' ELSE 'month' END, (p_now AT TIME ZONE 'UTC') AT TIME ZONE b.tz);
    a_window[n] := greatest(b."windowStart", (v_local AT TIME ZONE b.tz) AT TIME ZONE 'UTC');
    a_resets[n] := to_char(((v_local + CASE WHEN b.period = 'DAILY' THEN interval '1 day' ELSE interval '1 month' END) AT TIME ZONE b.tz) AT TIME ZONE 'UTC',
                           'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    -- What replaced estimates had added to this budget: off its spend (if added in this period) and back
    -- into this holder's lease, out of which hub_budget_charge had taken it.
    v_credit := 0;
    v_credit_spent := 0;
    IF v_credits <> '[]'::jsonb THEN
      SELECT coalesce(sum((c->>'cost')::bigint), 0),
             coalesce(sum((c->>'cost')::bigint) FILTER (WHERE (c->>'createdAt')::timestamp(3) >= a_window[n]), 0)
      INTO v_credit, v_credit_spent
      FROM jsonb_array_elements(v_credits) c
      WHERE (c->>'organizationId')::uuid = b."organizationId" AND (b."projectId" IS NULL OR (c->>'projectId')::uuid = b."projectId");
    END IF;
    a_spent[n] := greatest(CASE WHEN b."windowStart" < a_window[n] THEN 0 ELSE b."spentMicros" END + (o.op->>'spend')::bigint - v_credit_spent, 0);
    a_alerted[n] := CASE WHEN b."windowStart" < a_window[n] THEN 0 ELSE b."alertedPercent" END;
    a_org[n] := b."organizationId";
    a_project[n] := b."projectId";
    a_period[n] := b.period::text;
    a_limit[n] := b."limitMicros";
    a_exact_since[n] := b."leaseExactSince";
    a_lease0[n] := b.lease;
    a_lease1[n] := greatest(b.lease + v_credit - (o.op->>'shrink')::bigint, 0);
    a_reserved[n] := b."reservedMicros" - (a_lease0[n] - a_lease1[n]);
    -- What waiting reservations may take: lease that holds do not need, and free headroom (negative when the
    -- limit was lowered below what is spent and reserved: that much of the lease is not to be used).
    a_room[n] := greatest(greatest(a_lease1[n] - (o.op->>'keep')::bigint, 0) + a_limit[n] - a_spent[n] - a_reserved[n], 0);
  END LOOP;

  -- 2. Waiting reservations, first come first served, each on all of its budgets or none.
  FOR w IN SELECT e.ordinality AS pos, (e.value->>'amount')::bigint AS amount, e.value->'budgets' AS budgets
           FROM jsonb_array_elements(p_waiters) WITH ORDINALITY e LOOP
    v_fits := true;
    v_short := NULL;
    FOR k IN SELECT x::integer FROM jsonb_array_elements_text(w.budgets) x LOOP
      IF a_found[k] AND a_room[k] < w.amount THEN
        v_fits := false;
        v_short := k;
        EXIT;
      END IF;
    END LOOP;
    IF v_fits THEN
      FOR k IN SELECT x::integer FROM jsonb_array_elements_text(w.budgets) x LOOP
        IF a_found[k] THEN
          a_room[k] := a_room[k] - w.amount;
          a_use[k] := a_use[k] + w.amount;
        END IF;
      END LOOP;
      v_admitted := v_admitted || to_jsonb(w.pos);
    ELSE
      a_short[v_short] := true;
      v_refused := v_refused || jsonb_build_object('waiter', w.pos, 'budgetId', a_op[v_short]->>'id');
    END IF;
  END LOOP;

  -- 3. Each lease as it must be, and the budgets written.
  FOR i IN 1..n LOOP
    CONTINUE WHEN NOT a_found[i];
    -- What holds and admitted reservations need, from the lease and then from free headroom.
    v_free2 := a_limit[i] - a_spent[i] - a_reserved[i];
    v_base := a_lease1[i] + least(greatest((a_op[i]->>'keep')::bigint + a_use[i] - a_lease1[i], 0), greatest(v_free2, 0));
    IF a_op[i]->>'mode' = 'exact' THEN
      v_lease2 := least(v_base, (a_op[i]->>'keep')::bigint + a_use[i]);
    ELSE
      v_extra := least(greatest((a_op[i]->>'keep')::bigint + a_use[i] + (a_op[i]->>'spare')::bigint - v_base, 0),
                       greatest(v_free2 - (v_base - a_lease1[i]), 0) / 2);
      v_lease2 := v_base + v_extra;
    END IF;
    -- Over the limit (it was lowered): give back allowance no hold needs.
    v_free2 := v_free2 - (v_lease2 - a_lease1[i]);
    IF v_free2 < 0 THEN
      v_lease2 := greatest(least((a_op[i]->>'keep')::bigint + a_use[i], v_lease2), v_lease2 + v_free2);
    END IF;
    a_reserved[i] := a_reserved[i] + (v_lease2 - a_lease1[i]);

    v_alert := 0;
    IF (a_op[i]->>'settled')::boolean THEN
      -- A zero limit has no 50 % or 80 % of its own: it is reached once anything at all is spent (a limit
      -- lowered to $0 after spending), and free runs, which spend nothing, cross nothing.
      v_percent := CASE WHEN a_limit[i] > 0 THEN a_spent[i] * 100 / a_limit[i] WHEN a_spent[i] > 0 THEN 100 ELSE 0 END;
      v_alert := CASE WHEN v_percent >= 100 THEN 100 WHEN v_percent >= 80 THEN 80 WHEN v_percent >= 50 THEN 50 ELSE 0 END;
    END IF;

    UPDATE "Budget"
    SET "spentMicros" = a_spent[i], "reservedMicros" = a_reserved[i], "windowStart" = a_window[i],
        "alertedPercent" = greatest(a_alerted[i], v_alert), "updatedAt" = p_now
    WHERE id = (a_op[i]->>'id')::uuid;

    -- Every threshold crossed, in order, even several in one settlement: each announced once (claimed
    -- above, under the budget's lock), with its audit row.
    v_alerts := '[]'::jsonb;
    FOREACH v_threshold IN ARRAY ARRAY[50, 80, 100] LOOP
      CONTINUE WHEN v_threshold <= a_alerted[i] OR v_threshold > v_alert OR (a_limit[i] = 0 AND v_threshold < 100);
      v_alert_details := jsonb_build_object('budgetId', a_op[i]->>'id', 'projectId', a_project[i], 'period', a_period[i], 'percent', v_threshold,
        'limitMicros', a_limit[i]::text, 'spentMicros', a_spent[i]::text, 'resetsAt', a_resets[i]);
      INSERT INTO "AuditLog" (id, "organizationId", action, "targetType", "targetId", metadata, "createdAt")
      VALUES (gen_random_uuid(), a_org[i], 'budget.threshold_crossed', 'Budget', a_op[i]->>'id', v_alert_details, p_now);
      v_alerts := v_alerts || jsonb_build_array(v_alert_details);
    END LOOP;

    v_exact_since := CASE WHEN (a_op[i]->>'exact')::boolean THEN coalesce(a_exact_since[i], p_now) END;
    IF v_lease2 > 0 THEN
      UPDATE "BudgetLease" SET "amountMicros" = v_lease2, "exactSince" = v_exact_since, "expiresAt" = p_expires, "updatedAt" = p_now
      WHERE "budgetId" = (a_op[i]->>'id')::uuid AND holder = p_holder;
      IF NOT FOUND THEN
        INSERT INTO "BudgetLease" ("budgetId", holder, "amountMicros", "exactSince", "expiresAt", "createdAt", "updatedAt")
        VALUES ((a_op[i]->>'id')::uuid, p_holder, v_lease2, v_exact_since, p_expires, p_now, p_now);
      END IF;
    ELSIF a_lease0[i] > 0 THEN
      DELETE FROM "BudgetLease" WHERE "budgetId" = (a_op[i]->>'id')::uuid AND holder = p_holder;
    END IF;

    -- Only where a reservation was refused: other processes that keep spare allowance on the budget (the
    -- caller asks them to give it back before refusing anyone for good).
    v_loose := 0;
    IF a_short[i] THEN
      SELECT count(*) INTO v_loose FROM "BudgetLease" l
      WHERE l."budgetId" = (a_op[i]->>'id')::uuid AND l.holder <> p_holder AND l."exactSince" IS NULL AND l."amountMicros" > 0;
    END IF;

    v_out := v_out || jsonb_build_object(
      'id', a_op[i]->>'id', 'organizationId', a_org[i], 'projectId', a_project[i], 'period', a_period[i],
      'limitMicros', a_limit[i]::text, 'spentMicros', a_spent[i]::text, 'reservedMicros', a_reserved[i]::text,
      'leaseMicros', v_lease2::text, 'resetsAt', a_resets[i], 'alerts', v_alerts, 'looseLeases', v_loose);
  END LOOP;

  -- Audit rows the process asked for (refused reservations).
  INSERT INTO "AuditLog" (id, "organizationId", action, "targetType", "targetId", metadata, "createdAt")
  SELECT gen_random_uuid(), x."organizationId", x.action, x."targetType", x."targetId", x.metadata, p_now
  FROM jsonb_to_recordset(p_audit) AS x("organizationId" uuid, action text, "targetType" text, "targetId" text, metadata jsonb)
  JOIN "Organization" org ON org.id = x."organizationId"
  FOR KEY SHARE OF org;

  RETURN jsonb_build_object('budgets', v_out, 'admitted', v_admitted, 'refused', v_refused);
END;
$$;
