import type { Client, CombinedError } from '@urql/core';
import { OrgUsageDocument, type OrgUsageQueryVariables, type OrgUsageQuery } from '$lib/graphql/_generated/graphql';

export type UsageReportData = NonNullable<OrgUsageQuery['organization']>['usage'];
export type UsageRowData = UsageReportData['rows'][number];

/** One usage report as reactive state; `load` again with new variables, and late answers to old ones are dropped. */
export class UsageReportQuery {
  report = $state<UsageReportData | undefined>();
  error = $state<CombinedError | undefined>();
  fetching = $state(false);
  /** The variables of the last request, to reload after a budget alert. */
  #variables: OrgUsageQueryVariables | undefined;
  #seq = 0;

  constructor(private readonly client: Client) {}

  async load(variables: OrgUsageQueryVariables): Promise<void> {
    this.#variables = variables;
    const seq = ++this.#seq;
    this.fetching = true;
    const result = await this.client.query(OrgUsageDocument, variables, { requestPolicy: 'network-only' }).toPromise();
    if (seq !== this.#seq) return;
    this.fetching = false;
    this.error = result.error;
    if (result.data?.organization) this.report = result.data.organization.usage;
  }

  async reload(): Promise<void> {
    if (this.#variables) await this.load(this.#variables);
  }
}

/** `part` as a share of `whole`, e.g. `42.5 %`, rounded half up from the exact amounts. */
export function formatShare(part: string, whole: string): string {
  const total = BigInt(whole);
  if (total === 0n) return '—';
  const tenths = ((BigInt(part) * 2000n) / total + 1n) / 2n;
  return `${tenths / 10n}.${tenths % 10n} %`;
}

/** Rows by cost, most expensive first; ties keep the API's order. */
export function byCost(rows: UsageRowData[]): UsageRowData[] {
  return [...rows].sort((a, b) => {
    const diff = BigInt(b.cost) - BigInt(a.cost);
    return diff > 0n ? 1 : diff < 0n ? -1 : 0;
  });
}

/** Saves text as a file through a temporary object URL. */
export function downloadText(text: string, filename: string, type = 'text/csv;charset=utf-8'): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // Revoking at once can cancel the download in some browsers.
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
