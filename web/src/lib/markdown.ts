/**
 * A small Markdown renderer for model output and run input: headings, paragraphs, ordered and
 * unordered lists (nested by indentation), block quotes, rules, fenced code, inline code,
 * bold, italic, strikethrough and http(s)/mailto links.
 *
 * Safe by construction: the source is HTML-escaped before any Markdown is recognised, and the only
 * tags in the output are the ones emitted here, with no attributes taken from the input except
 * link targets that passed the scheme check. Incomplete input (a stream cut mid-way, an unclosed
 * fence) still renders sensibly, so it can be re-rendered as tokens arrive.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ESCAPES[ch]!);
}

/** Model `#` headings sit below the page's own headings, so `#` renders as h3. */
const HEADING_OFFSET = 2;

// Placeholders keep code spans and finished links out of later inline passes. NUL never survives
// into them from the input: it is stripped first.
const SLOT = '\u0000';

function renderInline(escaped: string): string {
  const slots: string[] = [];
  const hold = (html: string) => `${SLOT}${slots.push(html) - 1}${SLOT}`;

  let out = escaped.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_m, _ticks: string, code: string) =>
    hold(`<code>${code.trim() === '' ? code : code.replace(/^ (.*) $/, '$1')}</code>`),
  );

  out = out.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (match, label: string, href: string) => {
    // `href` is already escaped, so it cannot close the attribute; only the scheme needs checking.
    if (!/^(https?:\/\/|mailto:)/i.test(href)) return match;
    return hold(`<a href="${href}" target="_blank" rel="noopener noreferrer nofollow">${emphasis(label)}</a>`);
  });

  out = out.replace(/(^|[\s(])(https?:\/\/(?:[^\s<&]|&amp;)+)/g, (_m, before: string, found: string) => {
    // Sentence punctuation after a bare URL belongs to the sentence.
    const url = found.replace(/[.,;:!?)\]]+$/, '');
    const link = `<a href="${url}" target="_blank" rel="noopener noreferrer nofollow">${url}</a>`;
    return `${before}${hold(link)}${found.slice(url.length)}`;
  });

  out = emphasis(out);
  // A held link may hold code spans of its label in turn: each slot only names slots held before it.
  const held = new RegExp(`${SLOT}(\\d+)${SLOT}`, 'g');
  const restore = (html: string): string => html.replace(held, (_m, i: string) => restore(slots[Number(i)] ?? ''));
  return restore(out);
}

function emphasis(text: string): string {
  return text
    .replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, '<strong>$2</strong>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>')
    .replace(/(^|[^\w*])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\w)/g, '$1<em>$2</em>')
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, '$1<em>$2</em>');
}

interface ListFrame {
  indent: number;
  tag: 'ul' | 'ol';
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}&gt;\s?(.*)$/;
const LIST_ITEM = /^(\s*)([-*+]|(\d{1,9})[.)])\s+(.*)$/;

const normalize = (source: string) => source.replace(/\u0000/g, '').replace(/\r\n?/g, '\n');

/** Renders Markdown to HTML that is safe to insert with `{@html}`. */
export function renderMarkdown(source: string): string {
  return renderLines(escapeHtml(normalize(source)).split('\n')).html;
}

/**
 * Renders escaped lines. `settled` is where the HTML for every line before `line` is final whatever
 * follows: nothing is open there (no paragraph, no list), and `line` itself is complete (a newline
 * follows it) and not blank, so no look-ahead past it can change what was decided before it (a blank
 * line after a list is decided by the line after it). A blank line right after a code block counts
 * too: the block is final once its closing line is complete.
 */
function renderLines(lines: string[]): {
  html: string;
  settled: { line: number; html: number } | null;
  /** A fence that runs to the end of the text (not closed yet): where its HTML starts, and its parts. */
  openFence: { html: number; lang: string; body: string[] } | null;
} {
  const html: string[] = [];
  let paragraph: string[] = [];
  const lists: ListFrame[] = [];
  let itemOpen = false;
  let settled: { line: number; html: number } | null = null;
  let openFence: { html: number; lang: string; body: string[] } | null = null;
  let fenceClosedAt = -1; // the line of the last closing fence marker

  const closeParagraph = () => {
    if (paragraph.length > 0) html.push(`<p>${renderInline(paragraph.join('\n')).replace(/\n/g, '<br>')}</p>`);
    paragraph = [];
  };
  const closeListsTo = (depth: number) => {
    while (lists.length > depth) {
      html.push(`</li></${lists.pop()!.tag}>`);
      itemOpen = lists.length > 0;
    }
  };
  const closeBlocks = () => {
    closeParagraph();
    closeListsTo(0);
  };

  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (i > 0 && i < lines.length - 1 && paragraph.length === 0 && lists.length === 0 && (line.trim() !== '' || fenceClosedAt === i - 1)) {
      settled = { line: i, html: html.length };
    }

    const fence = FENCE.exec(line);
    if (fence) {
      closeParagraph();
      const marker = fence[1]!;
      const body: string[] = [];
      while (++i < lines.length && !lines[i]!.trimStart().startsWith(marker)) body.push(lines[i]!);
      if (i >= lines.length) openFence = { html: html.length, lang: fence[2] ?? '', body };
      else fenceClosedAt = i;
      html.push(`${preTag(fence[2] ?? '')}<code>${body.join('\n')}</code></pre>`);
      continue;
    }

    if (line.trim() === '') {
      closeParagraph();
      // A blank line inside a list keeps it open when the next line continues it.
      let n = i + 1;
      while (n < lines.length && lines[n]!.trim() === '') n++;
      const next = lines[n];
      if (lists.length > 0 && next !== undefined && (LIST_ITEM.test(next) || /^\s{2,}\S/.test(next))) continue;
      closeListsTo(0);
      continue;
    }

    const item = LIST_ITEM.exec(line);
    if (item && !RULE.test(line)) {
      closeParagraph();
      const indent = item[1]!.replace(/\t/g, '    ').length;
      const tag = item[3] === undefined ? 'ul' : 'ol';
      while (lists.length > 0 && indent < lists.at(-1)!.indent) closeListsTo(lists.length - 1);
      const top = lists.at(-1);
      if (!top || indent > top.indent) {
        const start = tag === 'ol' && item[3] !== '1' ? ` start="${Number(item[3])}"` : '';
        html.push(`<${tag}${start}><li>`);
        lists.push({ indent, tag });
      } else if (top.tag !== tag) {
        closeListsTo(lists.length - 1);
        html.push(`<${tag}><li>`);
        lists.push({ indent, tag });
      } else {
        html.push('</li><li>');
      }
      itemOpen = true;
      html.push(renderInline(item[4]!));
      continue;
    }

    if (itemOpen && /^\s+\S/.test(line)) {
      // An indented continuation of the current list item.
      html.push(`<br>${renderInline(line.trim())}`);
      continue;
    }

    const heading = HEADING.exec(line);
    if (heading) {
      closeBlocks();
      const level = Math.min(6, heading[1]!.length + HEADING_OFFSET);
      html.push(`<h${level}>${renderInline(heading[2]!)}</h${level}>`);
      continue;
    }

    if (RULE.test(line)) {
      closeBlocks();
      html.push('<hr>');
      continue;
    }

    const quote = QUOTE.exec(line);
    if (quote) {
      closeBlocks();
      const body = [quote[1]!];
      while (i + 1 < lines.length && QUOTE.test(lines[i + 1]!)) body.push(QUOTE.exec(lines[++i]!)![1]!);
      html.push(`<blockquote><p>${renderInline(body.join('\n')).replace(/\n/g, '<br>')}</p></blockquote>`);
      continue;
    }

    closeListsTo(0);
    paragraph.push(line.trim());
  }
  closeBlocks();
  // Characters of HTML before the k-th part.
  const at = (k: number) => {
    let n = 0;
    for (let j = 0; j < k; j++) n += html[j]!.length;
    return n;
  };
  return {
    html: html.join(''),
    settled: settled && { line: settled.line, html: at(settled.html) },
    // Inside a list, the list's closing tags follow the block: then it is rendered whole, as any block.
    openFence: openFence && openFence.html === html.length - 1 ? { ...openFence, html: at(openFence.html) } : null,
  };
}

const preTag = (lang: string) => (lang ? `<pre data-lang="${lang}">` : '<pre>');

/**
 * A fenced code block still streaming: its lines (escaped, each with its newline but the last), so that a
 * view can write each line on its own and rewrite only the last one as tokens arrive.
 */
export interface OpenCodeBlock {
  lang: string;
  lines: string[];
}

/** A piece of streamed Markdown: final or current HTML, or a code block that is still open. */
export type MarkdownPiece = string | OpenCodeBlock;

/** The HTML of the pieces, as `renderMarkdown` gives it for the whole text. */
export function piecesHtml(pieces: readonly MarkdownPiece[]): string {
  return pieces.map((p) => (typeof p === 'string' ? p : `${preTag(p.lang)}<code>${p.lines.join('')}</code></pre>`)).join('');
}

/**
 * A renderer for text that grows at its end, such as a run's output while it streams: it returns the
 * Markdown in pieces whose HTML (`piecesHtml`) is `renderMarkdown(source)`. Every piece but the last is
 * final and is not rendered again (the same string comes back), so each call renders only what follows
 * the last settled block, not the whole text, and a view inserting the pieces separately rewrites only
 * the last. When the text ends inside a code block, that block is the last piece, line by line (what
 * precedes it since the last settled block is the piece before, whose HTML no longer changes), so a view
 * rewrites only the block's last line as tokens arrive; the block is still escaped and split again on
 * every call, which is cheap next to rewriting the page. A source that does not extend the previous one
 * starts over.
 */
export function markdownStream(): (source: string) => MarkdownPiece[] {
  let done = ''; // normalized source whose HTML is final
  let pieces: string[] = [];
  /** The tail's HTML, split where an open code block starts. */
  const tail = (html: string, openFence: { html: number; lang: string; body: string[] } | null): MarkdownPiece[] => {
    if (!openFence) return [html];
    const block: OpenCodeBlock = { lang: openFence.lang, lines: openFence.body.map((line, k) => (k < openFence.body.length - 1 ? `${line}\n` : line)) };
    return openFence.html > 0 ? [html.slice(0, openFence.html), block] : [block];
  };
  return (source) => {
    const text = normalize(source);
    if (!text.startsWith(done)) {
      done = '';
      pieces = [];
    }
    const lines = escapeHtml(text.slice(done.length)).split('\n');
    const { html, settled, openFence } = renderLines(lines);
    if (!settled) return [...pieces, ...tail(html, openFence)];
    // The settled line's offset in the raw tail: escaping changes lengths, so count raw lines instead.
    const rawTail = text.slice(done.length);
    let offset = 0;
    for (let l = 0; l < settled.line; l++) offset = rawTail.indexOf('\n', offset) + 1;
    done += rawTail.slice(0, offset);
    pieces = [...pieces, html.slice(0, settled.html)];
    const rest = html.slice(settled.html);
    return [...pieces, ...tail(rest, openFence && { ...openFence, html: openFence.html - settled.html })];
  };
}
