import adapter from '@sveltejs/adapter-node';

/** @type {import('@sveltejs/kit').Config} */
const config = {
  kit: {
    // The API process mounts build/handler.js, so UI and API share one origin.
    adapter: adapter({ out: 'build' }),
    csp: {
      // Nonces for server-rendered pages, hashes for prerendered ones.
      mode: 'auto',
      directives: {
        'default-src': ['self'],
        'script-src': ['self'],
        // Svelte transitions and style: directives write inline styles at runtime.
        'style-src': ['self', 'unsafe-inline'],
        'img-src': ['self', 'data:'],
        'font-src': ['self'],
        // CSP Level 3: 'self' also matches ws:/wss: on this host, which graphql-ws needs.
        'connect-src': ['self'],
        'object-src': ['none'],
        'base-uri': ['self'],
        'form-action': ['self'],
        'frame-ancestors': ['none'],
      },
    },
  },
};

export default config;
