import type { Client, CombinedError } from '@urql/core';
import { isFinished } from '$lib/components/RunStatusBadge.svelte';
import { LiveSubscription } from '$lib/graphql/live-subscription.svelte';
import {
  RunPageDocument,
  RunPageEventsDocument,
  RunPageRetryUpdatesDocument,
  RunPageStoryDocument,
  type RunPageEventsSubscription,
  type RunPageRetryUpdatesSubscription,
  type Provider,
  type RunPageRunFragment,
  type RunStatus,
} from '$lib/graphql/_generated/graphql';

type RunEvent = RunPageEventsSubscription['runEvents'];
type RunUpdate = RunPageRetryUpdatesSubscription['projectRunUpdates'];

export interface LiveUsage {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  costMicros: string;
  /** The provider sent no usage report: these figures are the API's estimate. */
  estimated: boolean;
}

/** Why a run was BLOCKED, from its BUDGET_EXCEEDED error event (amounts are micro-dollars). */
export interface BudgetBlock {
  period: 'DAILY' | 'MONTHLY';
  /** The project's own budget rather than the organization's. */
  projectBudget: boolean;
  limitMicros: string;
  spentMicros: string;
  reservedMicros: string;
  requestedMicros: string;
  resetsAt: string;
}

function budgetBlock(payload: unknown): BudgetBlock | undefined {
  const p = (payload ?? {}) as Partial<Record<string, unknown>>;
  if (p.code !== 'BUDGET_EXCEEDED' || (p.period !== 'DAILY' && p.period !== 'MONTHLY')) return undefined;
  const micros = (v: unknown) => (typeof v === 'string' && /^\d+$/.test(v) ? v : '0');
  return {
    period: p.period,
    projectBudget: Boolean(p.projectId),
    limitMicros: micros(p.limitMicros),
    spentMicros: micros(p.spentMicros),
    reservedMicros: micros(p.reservedMicros),
    requestedMicros: micros(p.requestedMicros),
    resetsAt: typeof p.resetsAt === 'string' ? p.resetsAt : '',
  };
}

/**
 * One step of the run's provider story, from its LOG and ERROR events: an attempt starting on a provider and
 * model (the agent's own, `chainIndex` 0, or its nth fallback), a chain entry skipped, an attempt that failed.
 */
export type StoryEntry = { seq: number; provider?: Provider; model?: string } & (
  | { kind: 'attempt'; chainIndex: number; attempt: number; attemptForEntry: number }
  | { kind: 'skip'; chainIndex: number; detail: string }
  | { kind: 'error'; message: string }
);

const PROVIDERS: readonly string[] = ['OFFLINE', 'OPENAI', 'ANTHROPIC', 'XAI', 'PERPLEXITY'] satisfies Provider[];

/** The story entry an ERROR or LOG event tells, if it tells one (a budget's ERROR is told apart). */
function storyEntry(event: Pick<RunEvent, 'seq' | 'type' | 'payload'>): StoryEntry | undefined {
  const p = (event.payload ?? {}) as Partial<Record<string, unknown>>;
  const where = {
    seq: event.seq,
    provider: typeof p.provider === 'string' && PROVIDERS.includes(p.provider) ? (p.provider as Provider) : undefined,
    model: typeof p.model === 'string' ? p.model : undefined,
  };
  const chainIndex = Number(p.chainIndex) || 0;
  if (event.type === 'ERROR') return { ...where, kind: 'error', message: String(p.message ?? 'Unknown error') };
  if (event.type !== 'LOG') return undefined;
  if (p.kind === 'attempt') return { ...where, kind: 'attempt', chainIndex, attempt: Number(p.attempt) || 0, attemptForEntry: Number(p.attemptForEntry) || 1 };
  if (p.kind === 'skip') return { ...where, kind: 'skip', chainIndex, detail: String(p.detail ?? p.reason ?? 'skipped') };
  return undefined;
}

/** The run started over: its worker stopped responding and the run was claimed again. */
export interface Restart {
  seq: number;
  /** The claim that started over (the run's attempt number). */
  attempt: number;
  /** Why, as the recovery recorded it. */
  reason?: string;
  /** Characters of output streamed before, which the new attempt does not continue. */
  discarded: number;
}

/**
 * Reads a run's STATUS events in order and tells where it started over: every claim stores a RUNNING
 * event, so a RUNNING after the first is a new claim (the QUEUED event before it says why).
 */
class RestartTracker {
  #claims = 0;
  #queuedReason: string | undefined;

  /** The restart this STATUS event marks, if it marks one; `streamed` is the output shown until now. */
  status(event: Pick<RunEvent, 'seq' | 'status' | 'payload'>, streamed = ''): Restart | undefined {
    const p = (event.payload ?? {}) as Partial<Record<string, unknown>>;
    if (event.status === 'QUEUED') this.#queuedReason = typeof p.reason === 'string' ? p.reason : undefined;
    if (event.status !== 'RUNNING') return undefined;
    this.#claims++;
    if (this.#claims === 1) return undefined;
    // The claim's number as its event gives it, else as counted here.
    return { seq: event.seq, attempt: Number(p.attempt) || this.#claims, reason: this.#queuedReason, discarded: streamed.length };
  }
}

/**
 * One run, kept live: loaded once, then (while it is not finished) followed through the
 * `runEvents` subscription, which replays the stored events and then streams new ones. The
 * stream text is rebuilt from TOKEN events; when the final STATUS arrives the run is re-read so
 * the authoritative output, usage and permissions replace the live figures. Once it is finished, the
 * project's run updates tell of its retry, wherever that starts, and how the retry goes.
 *
 * Create it while a component initialises; it starts in the browser and stops on unmount.
 */
export class LiveRun {
  /** `undefined` while loading, `null` when the run does not exist or is not visible. */
  run = $state<RunPageRunFragment | null | undefined>();
  loadError = $state<CombinedError | undefined>();
  loading = $state(false);

  /** Output streamed so far, exactly as the TOKEN events delivered it. */
  streamed = $state('');
  /** True while the run's events are being followed, until its final status arrives. */
  streaming = $state(false);
  /** The latest status seen, from the subscription or the last read. */
  liveStatus = $state<RunStatus | undefined>();
  liveStartedAt = $state<string | undefined>();
  liveFirstTokenAt = $state<string | undefined>();
  liveUsage = $state<LiveUsage | undefined>();
  /** Which provider each attempt ran on, which entries were skipped and which attempts failed, in order. */
  story = $state<StoryEntry[]>([]);
  /** Whether `story` is the run's whole story so far (it is followed from its first event, or was read). */
  storyKnown = $state(false);
  /** Each time the run started over from scratch, oldest first. */
  restarts = $state<Restart[]>([]);
  budgetBlock = $state<BudgetBlock | undefined>();
  /** The live connection gave up (graphql-ws retries a dropped socket a few times first). */
  connectionLost = $state(false);

  /**
   * The project whose run updates may tell of this run's retry: while the run is finished and its retry, if
   * it has one, is not (a retry may start from anywhere, and then runs on).
   */
  #retryProject = $derived(
    this.run && isFinished(this.run.status) && !(this.run.retriedAs && isFinished(this.run.retriedAs.status)) ? this.run.project.id : undefined,
  );

  /** Highest event seq applied; never reactive, read by the subscription on every (re)subscribe. */
  #lastSeq = 0;
  #restarts = new RestartTracker();
  /** The stored story of a run not followed from its start was asked for. */
  #storyRead = false;
  #unsubscribe: (() => void) | undefined;
  #disposed = false;

  constructor(
    private readonly client: Client,
    readonly id: string,
  ) {
    $effect(() => {
      void this.load();
      return () => {
        this.#disposed = true;
        this.#unsubscribe?.();
      };
    });
    $effect(() => {
      const projectId = this.#retryProject;
      if (!projectId) return;
      // Created inside this effect, it stops with it: once the retry has finished, or when the page goes.
      new LiveSubscription(client, RunPageRetryUpdatesDocument, { projectId }, {
        next: ({ projectRunUpdates }) => this.#retryUpdated(projectRunUpdates),
        // A retry that started or changed while the connection was down sent nothing this page saw.
        resync: () => void this.load(),
      });
    });
  }

  /** A run of the project changed: if it is this run's retry, its link takes the retry's status (or appears). */
  #retryUpdated({ status, run: updated }: RunUpdate): void {
    const run = this.run;
    if (!run || !updated) return;
    const ours = run.retriedAs ? run.retriedAs.id === updated.id : updated.retryOf?.id === run.id;
    if (!ours) return;
    this.run = { ...run, retriedAs: { __typename: 'Run', id: updated.id, status } };
  }

  get status(): RunStatus | undefined {
    return this.liveStatus ?? this.run?.status;
  }

  get finished(): boolean {
    return this.status !== undefined && isFinished(this.status);
  }

  /** The latest attempt: the provider and model streaming now, or that the run ended on. */
  get attempt(): Extract<StoryEntry, { kind: 'attempt' }> | undefined {
    return this.story.findLast((e) => e.kind === 'attempt');
  }

  /**
   * Provider attempts made, every claim included, once the story is known. A run stored without a story
   * (before runs recorded one) has only its claims to go by.
   */
  get providerAttempts(): number | undefined {
    if (!this.storyKnown || !this.run) return undefined;
    const attempts = this.story.filter((e) => e.kind === 'attempt').length;
    return attempts > 0 || this.story.length > 0 || this.run.status === 'BLOCKED' ? attempts : this.run.attempts;
  }

  /** Reads the run; follows it live when it is still queued or running. */
  async load(): Promise<void> {
    this.loading = true;
    const result = await this.client.query(RunPageDocument, { id: this.id }, { requestPolicy: 'network-only' }).toPromise();
    if (this.#disposed) return;
    this.loading = false;
    this.loadError = result.error;
    if (!result.data) return;
    const run = result.data.run;
    this.run = run;
    if (!run) return;
    // A finished read is authoritative; a live status that is still catching up must not override it.
    if (isFinished(run.status)) this.liveStatus = run.status;
    else if (!this.#unsubscribe) this.follow();
    // A finished run this page did not follow: its stored story tells which providers it ran on, whether it
    // started over and what blocked it.
    if (isFinished(run.status) && this.#lastSeq === 0 && !this.#storyRead) void this.#loadStory();
  }

  /** Reads the run's STATUS, ERROR and LOG events: its providers, restarts and, if blocked, the budget that blocked it. */
  async #loadStory(): Promise<void> {
    this.#storyRead = true;
    const result = await this.client.query(RunPageStoryDocument, { id: this.id }, { requestPolicy: 'network-only' }).toPromise();
    if (this.#disposed) return;
    if (!result.data?.run) {
      this.#storyRead = false;
      return;
    }
    const events = result.data.run.events;
    this.budgetBlock ??= events.map((e) => (e.type === 'ERROR' ? budgetBlock(e.payload) : undefined)).findLast(Boolean);
    this.story = events.flatMap((e) => (budgetBlock(e.payload) ? [] : (storyEntry(e) ?? [])));
    this.storyKnown = true;
    if (this.restarts.length > 0) return;
    const tracker = new RestartTracker();
    this.restarts = events.flatMap((e) => (e.type === 'STATUS' ? (tracker.status(e) ?? []) : []));
  }

  /** (Re)subscribes from the last event seen, e.g. after the connection was lost for good. */
  follow(): void {
    this.#unsubscribe?.();
    this.connectionLost = false;
    if (this.#lastSeq === 0) {
      this.streamed = '';
      this.streaming = true;
      // The subscription replays every stored event first: the whole story.
      this.story = [];
      this.storyKnown = true;
    }
    const seen = () => this.#lastSeq;
    // graphql-ws re-sends this payload (JSON-serialised again) whenever it re-subscribes after a
    // dropped socket, so a getter makes every automatic resume start after the last seq seen.
    const variables = {
      runId: this.id,
      get afterSeq() {
        return seen();
      },
    };
    const { unsubscribe } = this.client.subscription(RunPageEventsDocument, variables).subscribe((result) => {
      if (result.error) {
        this.connectionLost = true;
        return;
      }
      const event = result.data?.runEvents;
      // Belt and braces: whatever a server replays, an event is applied once.
      if (event && event.seq > this.#lastSeq) {
        this.#lastSeq = event.seq;
        this.#apply(event);
      }
    });
    this.#unsubscribe = unsubscribe;
  }

  #apply(event: RunEvent): void {
    switch (event.type) {
      case 'TOKEN':
        this.liveFirstTokenAt ??= event.createdAt;
        this.streamed += event.text ?? '';
        break;
      case 'STATUS': {
        if (!event.status) break;
        this.liveStatus = event.status;
        // A new claim streams its output from the start: the earlier claim's text is not continued, so it
        // is not shown either.
        const restart = this.#restarts.status(event, this.streamed);
        if (restart) {
          this.restarts.push(restart);
          this.streamed = '';
          this.liveFirstTokenAt = undefined;
        }
        if (event.status === 'RUNNING') this.liveStartedAt ??= event.createdAt;
        if (isFinished(event.status)) {
          this.streaming = false;
          this.#unsubscribe = undefined;
          void this.load();
        }
        break;
      }
      case 'USAGE': {
        const p = event.payload as Partial<Record<string, unknown>>;
        this.liveUsage = {
          inputTokens: Number(p.inputTokens ?? 0),
          cachedInputTokens: Number(p.cachedInputTokens ?? 0),
          outputTokens: Number(p.outputTokens ?? 0),
          costMicros: String(p.costMicros ?? '0'),
          estimated: p.estimated === true,
        };
        break;
      }
      case 'ERROR':
      case 'LOG': {
        const block = budgetBlock(event.payload);
        if (block) {
          this.budgetBlock = block;
          break;
        }
        const entry = storyEntry(event);
        if (entry) this.story.push(entry);
        break;
      }
    }
  }
}
