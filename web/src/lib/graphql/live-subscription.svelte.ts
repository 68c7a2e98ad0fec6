import type { AnyVariables, Client, CombinedError, TypedDocumentNode } from '@urql/core';
import { subscriptionSocket } from './client';

export interface LiveSubscriptionHandlers<Data> {
  /** Each event the subscription delivers. */
  next(data: Data): void;
  /**
   * The subscription has just been (re)sent on a new connection, so events from before that moment
   * never reach it: re-read, from the network, what they would have changed. Not called when the
   * subscription starts on a connection that is already up: the owner's first read covers that.
   */
  resync?(): void;
}

/**
 * A subscription that feeds a page already showing a query's result, and says when that result must
 * be read again. Create it while a component initialises, alongside the page's first read: it
 * subscribes in the browser when the component mounts and stops on unmount.
 */
export class LiveSubscription<Data, Variables extends AnyVariables> {
  /** The subscription has been sent on a connection that is still open: changes from now on arrive. */
  live = $state(false);
  /** Why the subscription ended: the connection could not be restored, or the API refused it. */
  error = $state<CombinedError | undefined>();
  /** Counts restarts: the effect below subscribes again whenever it changes. */
  #restarts = $state(0);

  constructor(
    client: Client,
    document: TypedDocumentNode<Data, Variables>,
    variables: Variables,
    handlers: LiveSubscriptionHandlers<Data>,
  ) {
    $effect(() => {
      // A restart comes after events were missed while ended: re-read once the new subscription is sent.
      const restarted = this.#restarts > 0;
      const socket = subscriptionSocket(client);
      let ended = false;
      const stopConnected = socket?.onConnected(() => {
        if (ended) return;
        this.live = true;
        handlers.resync?.();
      });
      const stopClosed = socket?.onClosed(() => (this.live = false));
      const { unsubscribe } = client.subscription(document, variables).subscribe((result) => {
        if (result.data) {
          handlers.next(result.data);
          return;
        }
        if (!result.error) return;
        // An error without data ends the subscription: graphql-ws gave up reconnecting, or the API refused it.
        ended = true;
        this.live = false;
        this.error = result.error;
      });
      // urql and graphql-ws send the subscription a few microtasks from now, on the open connection
      // or on a new one (then `onConnected` reports it); an open one may also be closing, unused until now.
      const check = setTimeout(() => {
        if (ended || !socket?.connected) return;
        this.live = true;
        if (restarted) handlers.resync?.();
      }, 0);
      return () => {
        ended = true;
        clearTimeout(check);
        stopConnected?.();
        stopClosed?.();
        unsubscribe();
      };
    });
  }

  /**
   * Once the subscription has ended (see `error`), what subscribes again, for a Reconnect button (LiveBadge's
   * `onreconnect`); undefined while it is live or still trying.
   */
  get reconnect(): (() => void) | undefined {
    if (!this.error) return undefined;
    return () => {
      this.error = undefined;
      this.#restarts++;
    };
  }
}
