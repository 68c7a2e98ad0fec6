import { describe, expect, it } from 'vitest';
import { markdownStream, piecesHtml, renderMarkdown, type MarkdownPiece, type OpenCodeBlock } from '../src/lib/markdown.js';

// Every tag the renderer may emit; attribute values cannot contain a quote (it is escaped).
const SAFE_TAG =
  /^<\/?(p|br|h[3-6]|ul|li|blockquote|hr|strong|em|del|code|pre( data-lang="[\w+#.-]+")?|ol( start="\d+")?|a( href="(https?:\/\/|mailto:)[^"]*" target="_blank" rel="noopener noreferrer nofollow")?)>$/;

describe('renderMarkdown', () => {
  it('renders the offline provider’s reply', () => {
    const html = renderMarkdown(
      [
        '### Offline draft',
        '',
        '**Request:** "Plan the launch"',
        '',
        '**Plan:**',
        '1. Clarify the goal for **launch**.',
        '2. Draft a first pass at **plan**.',
        '',
        '**Risks:**',
        '- Scope creep around **launch**.',
        '',
        '_Offline provider: generated locally, no AI model called._',
      ].join('\n'),
    );
    expect(html).toBe(
      '<h5>Offline draft</h5>' +
        '<p><strong>Request:</strong> &quot;Plan the launch&quot;</p>' +
        '<p><strong>Plan:</strong></p>' +
        '<ol><li>Clarify the goal for <strong>launch</strong>.</li><li>Draft a first pass at <strong>plan</strong>.</li></ol>' +
        '<p><strong>Risks:</strong></p>' +
        '<ul><li>Scope creep around <strong>launch</strong>.</li></ul>' +
        '<p><em>Offline provider: generated locally, no AI model called.</em></p>',
    );
  });

  it('never lets HTML through, wherever it appears', () => {
    const attacks = [
      '<script>alert(1)</script>',
      '<img src=x onerror=alert(1)>',
      '**<b onmouseover=alert(1)>x</b>**',
      '`<iframe>`',
      '```html\n<script>alert(1)</script>\n```',
      '# <svg onload=alert(1)>',
      '- <a href="javascript:alert(1)">x</a>',
      '> <style>*{}</style>',
      '[click](javascript:alert(1))',
      '[click](https://example.com" onclick="alert(1))',
      'https://example.com/"><script>alert(1)</script>',
      '\u0000<script>',
    ];
    for (const attack of attacks) {
      for (const tag of renderMarkdown(attack).match(/<[^>]*>/g) ?? []) expect(tag).toMatch(SAFE_TAG);
    }
  });

  it('links only http(s) and mailto targets', () => {
    expect(renderMarkdown('[docs](https://example.com/a?b=1&c=2)')).toBe(
      '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">docs</a></p>',
    );
    expect(renderMarkdown('[x](javascript:alert(1))')).toBe('<p>[x](javascript:alert(1))</p>');
    expect(renderMarkdown('See https://example.com.')).toBe(
      '<p>See <a href="https://example.com" target="_blank" rel="noopener noreferrer nofollow">https://example.com</a>.</p>',
    );
  });

  it('renders code inside a link label', () => {
    expect(renderMarkdown('See [`runs.stream` and **more**](https://example.com/sdk) here')).toBe(
      '<p>See <a href="https://example.com/sdk" target="_blank" rel="noopener noreferrer nofollow"><code>runs.stream</code> and <strong>more</strong></a> here</p>',
    );
  });

  it('keeps code verbatim', () => {
    expect(renderMarkdown('Use `**not bold**` here')).toBe('<p>Use <code>**not bold**</code> here</p>');
    expect(renderMarkdown('```ts\nconst a = 1 < 2;\n# not a heading\n```')).toBe(
      '<pre data-lang="ts"><code>const a = 1 &lt; 2;\n# not a heading</code></pre>',
    );
  });

  it('renders an unfinished stream without losing text', () => {
    expect(renderMarkdown('```\npartial code')).toBe('<pre><code>partial code</code></pre>');
    expect(renderMarkdown('Some **bold')).toBe('<p>Some **bold</p>');
    expect(renderMarkdown('1. first\n2. sec')).toBe('<ol><li>first</li><li>sec</li></ol>');
  });

  it('nests lists by indentation and keeps soft line breaks', () => {
    expect(renderMarkdown('- a\n  - b\n- c')).toBe('<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>');
    expect(renderMarkdown('line one\nline two')).toBe('<p>line one<br>line two</p>');
    expect(renderMarkdown('3. three\n4. four')).toBe('<ol start="3"><li>three</li><li>four</li></ol>');
  });
});

/** Documents that exercise every block and the look-aheads that decide where a block ends. */
const STREAMED = [
  [
    '### Plan',
    '',
    'First **bold** paragraph',
    'with a soft break and https://example.com/x.',
    '',
    '- one',
    '- two',
    '',
    '  continued after a blank line',
    '  - nested',
    '',
    '- three, after a blank line',
    '',
    'A paragraph that closes the list.',
    '',
    '1. first',
    '2. second',
    '',
    '```ts',
    'const a = 1 < 2;',
    '',
    '# not a heading',
    '```',
    'Right after the fence.',
    '> a quote',
    '> on two lines',
    '---',
    '* * *',
    '- [link](https://example.com/a?b=1&c=2) and `code`',
    '',
    '',
    'The end.',
  ].join('\n'),
  'One line only, no newline at all',
  'Intro\n```ts\nconst a = 1 < 2;\n\n  return "x";\n```\nAfter the code.\n\n~~~\nopen at the end',
  '- item\n  ```\n  code in a list\n  more',
  '- item\n\n```\ncode\n```\n\n- next item\n\n  continued\n```\nshut\n```\nright after\n\n\n> quoted',
  '- a\n\n\n  b\n\nc\r\nd\r\n\r\n~~~\nunclosed fence\n\nstill code',
];

describe('markdownStream', () => {
  it('renders every prefix of a growing text exactly as renderMarkdown renders it whole', () => {
    for (const doc of STREAMED) {
      const render = markdownStream();
      for (let end = 0; end <= doc.length; end++) {
        const prefix = doc.slice(0, end);
        expect(piecesHtml(render(prefix)), JSON.stringify(prefix)).toBe(renderMarkdown(prefix));
      }
    }
  });

  it('gives back the settled pieces unchanged and renders only what follows them', () => {
    const doc = STREAMED[0]!;
    const render = markdownStream();
    let settled: MarkdownPiece[] = [];
    let grew = 0;
    for (let end = 1; end <= doc.length; end++) {
      const pieces = render(doc.slice(0, end));
      // What was settled stays, piece for piece; only the last piece is still being written.
      expect(pieces.slice(0, settled.length)).toEqual(settled);
      if (pieces.length - 1 > settled.length) grew++;
      settled = pieces.slice(0, -1);
    }
    expect(grew).toBeGreaterThan(5);
    expect(settled.length).toBeGreaterThan(5);
  });

  it('writes a long code block still streaming line by line: its finished lines stay as they were', () => {
    const code = Array.from({ length: 200 }, (_, i) => `line ${i} <${'x'.repeat(i % 7)}> "q"`).join('\n');
    const doc = `Some text first.\n\n\`\`\`js\n${code}\n\`\`\`\n\nThe end.\n`;
    const render = markdownStream();
    let previous: string[] = [];
    let steps = 0;
    for (let end = doc.indexOf('```') + 6; end < doc.indexOf('\n```\n', doc.indexOf('```') + 3); end += 3) {
      const pieces = render(doc.slice(0, end));
      const block = pieces.at(-1) as OpenCodeBlock;
      expect(typeof block, JSON.stringify(doc.slice(0, end))).toBe('object');
      expect(block.lang).toBe('js');
      // Every line but the one being written comes back as the same string.
      expect(block.lines.slice(0, previous.length - 1)).toEqual(previous.slice(0, -1));
      expect(block.lines.length).toBeGreaterThanOrEqual(previous.length);
      previous = block.lines;
      steps++;
    }
    expect(steps).toBeGreaterThan(100);
    expect(previous.length).toBe(200);
    // Closed, the block is HTML like any other.
    const closed = render(doc);
    expect(closed.every((p) => typeof p === 'string')).toBe(true);
    expect(piecesHtml(closed)).toBe(renderMarkdown(doc));
  });

  it('starts over when the text is replaced rather than extended', () => {
    const render = markdownStream();
    render('# One\n\nfirst text\n\nmore');
    expect(piecesHtml(render('Something else entirely'))).toBe('<p>Something else entirely</p>');
  });
});

