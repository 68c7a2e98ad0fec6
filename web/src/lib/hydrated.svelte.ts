import { onMount } from 'svelte';

/**
 * False in the server-rendered page and until its script has taken over, then true. A form whose
 * submit is handled in the browser disables its button until then: sent earlier, the browser would
 * post it to a page that has no form action and leave it.
 */
export function hydrated(): { readonly current: boolean } {
  let current = $state(false);
  onMount(() => {
    current = true;
  });
  return {
    get current() {
      return current;
    },
  };
}
