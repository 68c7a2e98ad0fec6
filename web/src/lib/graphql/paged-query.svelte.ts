import type { AnyVariables, Client, CombinedError, TypedDocumentNode } from '@urql/core';

/** The part of a Relay connection a paged list reads. */
export interface PagedConnection<Node> {
  edges: { node: Node }[];
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
  /** Read when the query selects it. */
  totalCount?: number | null;
}

/**
 * A cursor-paginated list read page by page ("Show older" / "Load more"), as reactive state. `load()`
 * starts again from the first page (call it when the variables change), `more()` appends the next
 * one. A response to a request that was superseded meanwhile is ignored. The last good items survive
 * a failed request; `error` says what failed.
 */
export class PagedQuery<Data, Variables extends AnyVariables & { first?: number | null; after?: string | null }, Node> {
  items = $state<Node[]>([]);
  hasNextPage = $state(false);
  /** The connection's `totalCount`, when the query selects it. */
  totalCount = $state<number | undefined>();
  /** True once a first page has arrived. */
  loaded = $state(false);
  fetching = $state(false);
  error = $state<CombinedError | undefined>();

  #cursor: string | null = null;
  #variables: Omit<Variables, 'first' | 'after'> | undefined;
  #seq = 0;

  constructor(
    private readonly client: Client,
    private readonly document: TypedDocumentNode<Data, Variables>,
    /** Where the connection is in the response (null: nothing to show, e.g. access lost). */
    private readonly connection: (data: Data) => PagedConnection<Node> | null | undefined,
    private readonly pageSize: number,
  ) {}

  /** The first page, with these variables (the last ones when omitted). */
  load(variables?: Omit<Variables, 'first' | 'after'>): Promise<void> {
    if (variables) this.#variables = variables;
    return this.#fetch(null);
  }

  /** The page after the last one read. */
  more(): Promise<void> {
    return this.#fetch(this.#cursor);
  }

  async #fetch(after: string | null): Promise<void> {
    const seq = ++this.#seq;
    this.fetching = true;
    const variables = { ...this.#variables, first: this.pageSize, after } as unknown as Variables;
    const result = await this.client.query(this.document, variables, { requestPolicy: 'network-only' }).toPromise();
    if (seq !== this.#seq) return;
    this.fetching = false;
    this.error = result.error;
    const connection = result.data ? this.connection(result.data) : null;
    if (!connection) return;
    const page = connection.edges.map((edge) => edge.node);
    this.items = after ? [...this.items, ...page] : page;
    this.#cursor = connection.pageInfo.endCursor ?? null;
    this.hasNextPage = connection.pageInfo.hasNextPage;
    this.totalCount = connection.totalCount ?? undefined;
    this.loaded = true;
  }
}
