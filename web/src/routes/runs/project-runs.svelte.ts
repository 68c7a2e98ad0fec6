import type { Client, CombinedError } from '@urql/core';
import {
  RunsPageDocument,
  RunsTableUpdatesDocument,
  type RunStatus,
  type RunsTableRunFragment,
} from '$lib/graphql/_generated/graphql';

const PAGE_SIZE = 25;

/**
 * A project's runs, newest first, filtered by status, paged with "Load more", and kept current by
 * the `projectRunUpdates` subscription: a run that changes is replaced in place, a new one that
 * matches the filter is added on top, one that no longer matches is dropped.
 *
 * Create it while a component initialises; it loads in the browser and stops on unmount.
 */
export class ProjectRuns {
  runs = $state<RunsTableRunFragment[]>([]);
  totalCount = $state(0);
  hasMore = $state(false);
  /** True until the first page has arrived (or failed). */
  loading = $state(true);
  loadingMore = $state(false);
  error = $state<CombinedError | undefined>();
  /** The live subscription is open. */
  live = $state(false);

  #cursor: string | null = null;
  #seq = 0;

  constructor(
    private readonly client: Client,
    readonly projectId: string,
    /** Statuses to show; empty for all. */
    readonly statuses: RunStatus[],
  ) {
    $effect(() => {
      void this.reload();
      const { unsubscribe } = this.client.subscription(RunsTableUpdatesDocument, { projectId }).subscribe((result) => {
        this.live = !result.error;
        const run = result.data?.projectRunUpdates.run;
        if (run) this.#upsert(run);
      });
      this.live = true;
      return () => {
        this.#seq++;
        unsubscribe();
      };
    });
  }

  /** Reads the first page again, replacing what is shown. */
  async reload(): Promise<void> {
    const seq = ++this.#seq;
    const result = await this.#fetch(null);
    if (seq !== this.#seq) return;
    this.loading = false;
    this.error = result.error;
    const connection = result.data?.project?.runs;
    if (!connection) return;
    this.runs = connection.edges.map((e) => e.node);
    this.totalCount = connection.totalCount;
    this.hasMore = connection.pageInfo.hasNextPage;
    this.#cursor = connection.pageInfo.endCursor ?? null;
  }

  async loadMore(): Promise<void> {
    if (!this.hasMore || this.loadingMore) return;
    const seq = this.#seq;
    this.loadingMore = true;
    const result = await this.#fetch(this.#cursor);
    if (seq !== this.#seq) return;
    this.loadingMore = false;
    this.error = result.error;
    const connection = result.data?.project?.runs;
    if (!connection) return;
    // A run that moved onto an earlier page while live updates arrived is already shown.
    const shown = new Set(this.runs.map((r) => r.id));
    this.runs.push(...connection.edges.map((e) => e.node).filter((r) => !shown.has(r.id)));
    this.totalCount = connection.totalCount;
    this.hasMore = connection.pageInfo.hasNextPage;
    this.#cursor = connection.pageInfo.endCursor ?? null;
  }

  #fetch(after: string | null) {
    return this.client
      .query(
        RunsPageDocument,
        {
          projectId: this.projectId,
          first: PAGE_SIZE,
          after,
          filter: this.statuses.length > 0 ? { status: this.statuses } : null,
        },
        { requestPolicy: 'network-only' },
      )
      .toPromise();
  }

  #upsert(run: RunsTableRunFragment): void {
    const matches = this.statuses.length === 0 || this.statuses.includes(run.status);
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
}
