import type { AnyVariables, Client, CombinedError, TypedDocumentNode } from '@urql/core';

export interface PolledQueryOptions {
  /** Delay between the end of one request and the start of the next. */
  intervalMs: number;
}

/**
 * A query re-fetched from the network on an interval, as reactive state. Create it while a
 * component initialises: it starts polling in the browser when the component mounts, pauses
 * while the tab is hidden, and stops on unmount. The last good `data` survives later errors.
 */
export class PolledQuery<Data, Variables extends AnyVariables> {
  data = $state<Data | undefined>();
  error = $state<CombinedError | undefined>();
  fetching = $state(false);
  /** When `data` was last received (epoch ms). */
  updatedAt = $state<number | undefined>();

  #seq = 0;

  constructor(
    private readonly client: Client,
    private readonly document: TypedDocumentNode<Data, Variables>,
    private readonly variables: Variables,
    private readonly options: PolledQueryOptions,
  ) {
    $effect(() => this.#poll());
  }

  /** Fetches now; a response to an older request that arrives later is ignored. */
  async refresh(): Promise<void> {
    const seq = ++this.#seq;
    this.fetching = true;
    const result = await this.client
      .query(this.document, this.variables, { requestPolicy: 'network-only' })
      .toPromise();
    if (seq !== this.#seq) return;
    this.fetching = false;
    this.error = result.error;
    if (result.data) {
      this.data = result.data;
      this.updatedAt = Date.now();
    }
  }

  #poll(): () => void {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight = false;
    let stopped = false;

    // While the tab is hidden nothing is scheduled; becoming visible fetches at once.
    const tick = async () => {
      timer = undefined;
      if (stopped || document.visibilityState !== 'visible') return;
      inFlight = true;
      await this.refresh();
      inFlight = false;
      if (!stopped) timer = setTimeout(tick, this.options.intervalMs);
    };
    const onVisibilityChange = () => {
      if (document.visibilityState !== 'visible' || inFlight) return;
      clearTimeout(timer);
      void tick();
    };

    void tick();
    document.addEventListener('visibilitychange', onVisibilityChange);
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibilityChange);
    };
  }
}
