import type { Client, CombinedError } from '@urql/core';
import {
  RunsPageDocument,
  RunsTableUpdatesDocument,
  type RunStatus,
  type RunsPageQuery,
  type RunsTableRunFragment,
  type RunsTableUpdatesSubscription,
  type RunsTableUpdatesSubscriptionVariables,
} from '$lib/graphql/_generated/graphql';
import { LiveSubscription } from '$lib/graphql/live-subscription.svelte';

const PAGE_SIZE = 25;
/** The most runs the API returns in one page. */
const MAX_PAGE_SIZE = 100;

type Run = RunsTableRunFragment;
type Connection = NonNullable<RunsPageQuery['project']>['runs'];
type Edge = Connection['edges'][number];

/** Where a list stands after a read: how many runs match, and where "Load more" resumes. */
interface Page {
  totalCount: number;
  hasMore: boolean;
  cursor: string | null;
}

const page = (connection: Connection): Page => ({
  totalCount: connection.totalCount,
  hasMore: connection.pageInfo.hasNextPage,
  cursor: connection.pageInfo.endCursor ?? null,
});

/**
 * A project's runs, newest first, filtered by status and agent, paged with "Load more", and kept
 * current by the `projectRunUpdates` subscription (which carries every run of the project): a run
 * that changes is replaced in place, a new one that matches the filter is added on top, one that no
 * longer matches is dropped, and one of another agent is never shown; a retry's update links its
 * original's row to it. Each time the subscription starts listening on a new connection, every run
 * shown is read again, so nothing that changed before it listened is lost.
 *
 * Reads run one after another. Updates that arrive while one is in flight are applied at once and
 * again over its result, which may be older than they are.
 *
 * Create it while a component initialises; it loads in the browser and stops on unmount.
 */
export class ProjectRuns {
  runs = $state<Run[]>([]);
  totalCount = $state(0);
  hasMore = $state(false);
  /** True until the first page has arrived (or failed). */
  loading = $state(true);
  loadingMore = $state(false);
  error = $state<CombinedError | undefined>();

  readonly #updates: LiveSubscription<RunsTableUpdatesSubscription, RunsTableUpdatesSubscriptionVariables>;
  #cursor: string | null = null;
  /** The last read queued; the next one starts when it is done. */
  #reads: Promise<void> = Promise.resolve();
  /** Updates received while a read is in flight, to replay over its result. */
  #journal: Run[] | undefined;
  #disposed = false;

  constructor(
    private readonly client: Client,
    readonly projectId: string,
    /** Statuses to show; empty for all. */
    readonly statuses: RunStatus[],
    /** The agent (global id) whose runs to show; null for every agent's. */
    readonly agentId: string | null = null,
  ) {
    this.#updates = new LiveSubscription(client, RunsTableUpdatesDocument, { projectId }, {
      next: ({ projectRunUpdates: { run } }) => {
        if (!run) return;
        this.#journal?.push(run);
        this.#upsert(run);
      },
      resync: () => void this.#read(() => this.#readShown()),
    });
    $effect(() => {
      void this.reload();
      return () => {
        this.#disposed = true;
      };
    });
  }

  /** Updates reach this list as they happen. */
  get live(): boolean {
    return this.#updates.live;
  }

  /** Once updates ended for good (what is shown may be out of date), what subscribes again; see LiveSubscription. */
  get reconnect(): (() => void) | undefined {
    return this.#updates.reconnect;
  }

  /** Reads the first page again, replacing what is shown. */
  reload(): Promise<void> {
    return this.#read(async () => {
      const result = await this.#fetch(null, PAGE_SIZE);
      return () => {
        this.loading = false;
        this.error = result.error;
        const connection = result.data?.project?.runs;
        if (connection) this.#show(connection.edges.map((e) => e.node), page(connection));
      };
    });
  }

  async loadMore(): Promise<void> {
    if (!this.hasMore || this.loadingMore) return;
    this.loadingMore = true;
    await this.#read(async () => {
      // A read queued before this one may have changed what "more" means.
      if (!this.hasMore) return undefined;
      const result = await this.#fetch(this.#cursor, PAGE_SIZE);
      return () => {
        this.error = result.error;
        const connection = result.data?.project?.runs;
        if (!connection) return;
        // A run that moved onto an earlier page while live updates arrived is already shown.
        const shown = new Set(this.runs.map((r) => r.id));
        this.#show([...this.runs, ...connection.edges.map((e) => e.node).filter((r) => !shown.has(r.id))], page(connection));
      };
    });
    this.loadingMore = false;
  }

  /** Reads again, page after page, every run down to the oldest one shown, and replaces them. */
  async #readShown(): Promise<() => void> {
    const oldest = this.runs.at(-1);
    const wanted = this.runs.length;
    const edges: Edge[] = [];
    let after: string | null = null;
    for (;;) {
      const result = await this.#fetch(after, Math.min(MAX_PAGE_SIZE, Math.max(PAGE_SIZE, wanted - edges.length)));
      const connection = result.data?.project?.runs;
      // Keep what is shown; the error says it may be stale.
      if (!connection) return () => (this.error = result.error);
      edges.push(...connection.edges);
      // Stop past the oldest run shown (which may have left the filter), and show nothing older: that stays behind "Load more".
      const past = oldest ? edges.findIndex((e) => e.node.createdAt < oldest.createdAt) : edges.length;
      if (past >= 0 || !connection.pageInfo.hasNextPage) {
        const kept = past >= 0 ? edges.slice(0, past) : edges;
        const trimmed = kept.length < edges.length;
        return () => {
          this.loading = false;
          this.error = result.error;
          this.#show(kept.map((e) => e.node), {
            totalCount: connection.totalCount,
            hasMore: trimmed || connection.pageInfo.hasNextPage,
            cursor: (trimmed ? kept.at(-1)?.cursor : connection.pageInfo.endCursor) ?? null,
          });
        };
      }
      after = connection.pageInfo.endCursor ?? null;
    }
  }

  /** Queues a read; what it resolves to is applied once it is done, then the updates it may have missed. */
  #read(read: () => Promise<(() => void) | undefined>): Promise<void> {
    const done = this.#reads.then(async () => {
      if (this.#disposed) return;
      this.#journal = [];
      try {
        const apply = await read();
        if (this.#disposed || !apply) return;
        apply();
        for (const run of this.#journal) this.#upsert(run);
      } finally {
        this.#journal = undefined;
      }
    });
    this.#reads = done.catch(() => {});
    return done;
  }

  #fetch(after: string | null, first: number) {
    return this.client
      .query(
        RunsPageDocument,
        {
          projectId: this.projectId,
          first,
          after,
          filter:
            this.statuses.length > 0 || this.agentId
              ? { ...(this.statuses.length > 0 ? { status: this.statuses } : {}), ...(this.agentId ? { agentId: this.agentId } : {}) }
              : null,
        },
        { requestPolicy: 'network-only' },
      )
      .toPromise();
  }

  #show(runs: Run[], { totalCount, hasMore, cursor }: Page): void {
    this.runs = runs;
    this.totalCount = totalCount;
    this.hasMore = hasMore;
    this.#cursor = cursor;
  }

  #upsert(run: Run): void {
    this.#linkRetry(run);
    const matches =
      (this.statuses.length === 0 || this.statuses.includes(run.status)) && (this.agentId === null || run.agent.id === this.agentId);
    const index = this.runs.findIndex((r) => r.id === run.id);
    if (index >= 0) {
      if (matches) this.runs[index] = run;
      else {
        this.runs.splice(index, 1);
        this.totalCount = Math.max(0, this.totalCount - 1);
      }
    } else if (matches && !this.loading) {
      // Keep creation order; a run that belongs on a page not loaded yet will arrive with it.
      const at = this.runs.findIndex((r) => r.createdAt < run.createdAt);
      if (at === -1 && this.hasMore) return;
      this.runs.splice(at === -1 ? this.runs.length : at, 0, run);
      this.totalCount++;
    }
  }

  /**
   * A retry's updates are the only news its original gets (the original itself does not change): the
   * original's row takes the retry as its retriedAs, status included. A run is retried once, so a row
   * that names another retry keeps it.
   */
  #linkRetry(run: Run): void {
    if (!run.retryOf) return;
    const index = this.runs.findIndex((r) => r.id === run.retryOf!.id);
    const original = this.runs[index];
    if (!original || (original.retriedAs && original.retriedAs.id !== run.id)) return;
    this.runs[index] = { ...original, retriedAs: { __typename: 'Run', id: run.id, status: run.status } };
  }
}
