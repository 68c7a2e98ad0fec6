import { sveltekit } from '@sveltejs/kit/vite';
import tailwindcss from '@tailwindcss/vite';
import { defineConfig } from 'vite';

// `vite dev` serves only the UI; the API (`pnpm dev` at the root) listens on :3000 by default.
const apiOrigin = process.env.HUB_API_ORIGIN ?? 'http://127.0.0.1:3000';

export default defineConfig({
  plugins: [tailwindcss(), sveltekit()],
  server: {
    proxy: {
      // `ws: true` carries graphql-ws subscriptions on the same path.
      '/graphql': { target: apiOrigin, ws: true, changeOrigin: false },
    },
  },
});
