import type { HandleClientError } from '@sveltejs/kit';

/** How browsers word a module (a page's code) that could not be fetched: Chromium, Firefox, Safari, Vite's CSS preload. */
const UNFETCHED_MODULE = /dynamically imported module|Importing a module script failed|Unable to preload CSS/i;

/**
 * A page whose code could not be fetched (the server restarting, the network down) is no internal error:
 * the error page says what happened, so that trying again is the obvious next step.
 */
export const handleError: HandleClientError = ({ error, message }) => {
  if (error instanceof Error && UNFETCHED_MODULE.test(error.message)) {
    return { message: 'This page could not be loaded: the server did not answer. Check that it is running and that your network is up, then try again.' };
  }
  return { message };
};
