import { Virtualizer, elementScroll, observeElementOffset, observeElementRect, type VirtualItem } from '@tanstack/virtual-core';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import { PAGE_ROWS, type ColumnView, type RowsView } from '../src/core/protocol/webview';

/** Every row is exactly this tall (taskPanel.css agrees), so the virtualizer never measures. */
export const ROW_HEIGHT = 22;
/** Rows per fetchRows request. */
export const PAGE_SIZE = PAGE_ROWS;
/** Pages kept in memory (20,000 rows); the farthest from the view go first. */
const MAX_PAGES = 40;
/**
 * The tallest scroll content the grid makes. Browsers cap an element's height (Chromium at about 33.5 million
 * pixels, Firefox lower), which at 22 px a row ended the grid near row 1,500,000 of a larger result. Beyond this
 * height the scrollbar is scaled: a pixel of it is several pixels of rows, and the rows are placed where the
 * scaled position says (see `scale`).
 */
export const MAX_SCROLL_PX = 8_000_000;
/** A cell shows at most this much text: a 10 MB value in one td would stall layout. Copy takes the whole value. */
const MAX_CELL_CHARS = 1000;

type Row = (string | null)[];

/** Types whose values line up on the right, as psql prints them (format_type names, with or without a modifier). */
const NUMERIC_TYPE = /^(smallint|integer|bigint|numeric|decimal|real|double precision|money|oid)\b/;

/**
 * The one way this front end makes DOM: elements with text nodes (append of a string), never HTML strings,
 * because cells and task texts are foreign data.
 */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  e.append(...children);
  return e;
}

/** What the grid needs from the panel. */
export interface GridHost {
  /** Asks the extension for rows afterRow+1 … afterRow+limit and returns the request id. */
  fetch(afterRow: number, limit: number): number;
  copy(text: string): void;
  scrolled(scrollTop: number): void;
  selectionChanged(): void;
}

/**
 * A step's result as a plain table virtualized with @tanstack/virtual-core: only the visible rows are in the
 * DOM, and rows come from the extension a page at a time as they scroll into view (never the whole result).
 */
export class ResultGrid {
  readonly element = el('div', 'grid');
  private readonly status = el('div', 'grid-status');
  private readonly scroller = el('div', 'grid-scroll');
  private readonly table = el('table', 'grid-table');
  private readonly tbody = el('tbody');
  private readonly topSpacer = el('tr', 'spacer');
  private readonly bottomSpacer = el('tr', 'spacer');
  private columns: ColumnView[] | undefined;
  /** Per column: whether its values are numbers (right-aligned). */
  private numeric: boolean[] = [];
  private headHeight = 0;
  private readonly pages = new Map<number, Row[]>();
  private readonly pending = new Map<number, number>(); // requestId → page
  private rowCache = new Map<number, HTMLTableRowElement>();
  private selected: { row: number; col: number } | undefined;
  private virtualizer: Virtualizer<HTMLDivElement, HTMLTableRowElement> | undefined;
  private unmount: (() => void) | undefined;
  private fetchTimer: number | undefined;
  private visible: VirtualItem[] = [];
  /** After a failed page, rows are fetched again only through Retry, not on every scroll. */
  private failed = false;
  private disposed = false;
  /** Rows' pixels per scrollbar pixel: 1 until the rows are taller than MAX_SCROLL_PX. */
  private scale = 1;

  constructor(
    private readonly host: GridHost,
    private count: number,
    private readonly initialScrollTop: number,
    first?: RowsView,
  ) {
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-live', 'polite');
    this.status.textContent = 'Loading rows…';
    this.table.tabIndex = 0;
    this.table.setAttribute('role', 'grid');
    this.table.setAttribute('aria-label', 'Result rows');
    this.table.setAttribute('aria-rowcount', String(count + 1));
    this.table.addEventListener('keydown', (e) => this.onKey(e));
    this.tbody.addEventListener('click', (e) => this.onClick(e));
    this.scroller.addEventListener('scroll', () => this.host.scrolled(this.scroller.scrollTop), { passive: true });
    this.scroller.append(this.table);
    this.element.append(this.status, this.scroller);
    // The page under the restored scroll position first: its answer also brings the columns. The host may have
    // sent page 0 with the task already (`first`); it is taken once the grid is in the document.
    const page = Math.floor(Math.max(0, initialScrollTop) / ROW_HEIGHT / PAGE_SIZE);
    if (page === 0 && first && first.firstRow === 1) queueMicrotask(() => this.take(0, first.columns, first.firstRow, first.rows, first.totalStored));
    else this.request(page);
  }

  /** Takes an answer to one of this grid's requests; false when the request was not its own. */
  onRows(requestId: number, columns: ColumnView[], firstRow: number, rows: Row[], totalStored: number): boolean {
    const page = this.pending.get(requestId);
    if (page === undefined) return false;
    this.pending.delete(requestId);
    this.take(page, columns, firstRow, rows, totalStored);
    return true;
  }

  private take(page: number, columns: ColumnView[], firstRow: number, rows: Row[], totalStored: number): void {
    if (this.disposed) return;
    this.pages.set(page, rows);
    this.evict(page);
    for (let i = 0; i < rows.length; i++) this.rowCache.delete(firstRow - 1 + i);
    if (!this.columns) {
      this.count = totalStored;
      this.mount(columns, rows);
    } else {
      this.render();
    }
    if (this.selected && Math.floor(this.selected.row / PAGE_SIZE) === page) this.host.selectionChanged();
  }

  onError(requestId: number, message: string): boolean {
    if (!this.pending.delete(requestId)) return false;
    this.failed = true;
    this.status.replaceChildren(el('span', 'error-text', `Could not load rows: ${message}`));
    const retry = el('vscode-button');
    retry.textContent = 'Retry';
    retry.secondary = true;
    retry.addEventListener('click', () => {
      this.failed = false;
      this.status.textContent = this.columns ? '' : 'Loading rows…';
      if (this.columns) this.fetchVisible();
      else this.request(Math.floor(Math.max(0, this.initialScrollTop) / ROW_HEIGHT / PAGE_SIZE));
    });
    this.status.append(' ', retry);
    return true;
  }

  /** The selected cell's value: a string, null for NULL, undefined when nothing (loaded) is selected. */
  selectedValue(): string | null | undefined {
    if (!this.selected) return undefined;
    return this.pages.get(Math.floor(this.selected.row / PAGE_SIZE))?.[this.selected.row % PAGE_SIZE]?.[this.selected.col];
  }

  /** Copies the selected cell; NULL copies as empty text, as the CSV export writes it. */
  copySelected(): void {
    const v = this.selectedValue();
    if (v !== undefined) this.host.copy(v ?? '');
  }

  focus(): void {
    this.table.focus({ preventScroll: true });
  }

  dispose(): void {
    this.disposed = true;
    this.unmount?.();
    window.clearTimeout(this.fetchTimer);
    this.pending.clear();
    this.element.remove();
  }

  private request(page: number): void {
    this.pending.set(this.host.fetch(page * PAGE_SIZE, PAGE_SIZE), page);
  }

  private mount(columns: ColumnView[], sample: Row[]): void {
    this.columns = columns;
    this.numeric = columns.map((c) => NUMERIC_TYPE.test(c.type));
    this.status.textContent = '';
    this.table.setAttribute('aria-colcount', String(columns.length + 1));
    // Fixed layout with widths from the header and the first page, so columns do not jump while scrolling.
    const widths = [String(this.count).length + 1, ...columns.map((c, i) => {
      // A quarter more than the sample's longest value: later pages tend to hold longer numbers and names.
      const longest = Math.ceil(1.25 * sample.reduce((m, r) => Math.max(m, r[i]?.length ?? 4), 0));
      return Math.max(4, Math.min(40, Math.max(c.name.length, c.type.length, longest)));
    })];
    // 13 px: a cell's padding and border (taskPanel.css).
    const colgroup = el('colgroup', undefined, ...widths.map((w) => {
      const col = el('col');
      col.style.width = `calc(${w}ch + 13px)`;
      return col;
    }));
    this.table.style.width = `calc(${widths.reduce((a, b) => a + b, 0)}ch + ${13 * widths.length}px)`;
    const head = el('tr', undefined, el('th', 'rownum', '#'), ...columns.map((c, i) => {
      const th = el('th', this.numeric[i] ? 'num' : undefined, el('span', 'col-name', c.name), el('span', 'col-type', c.type));
      th.scope = 'col';
      th.title = `${c.name} ${c.type}`;
      return th;
    }));
    head.setAttribute('aria-rowindex', '1');
    const thead = el('thead', undefined, head);
    for (const s of [this.topSpacer, this.bottomSpacer]) s.appendChild(el('td')).colSpan = columns.length + 1;
    this.table.append(colgroup, thead, this.tbody);
    this.headHeight = thead.offsetHeight;
    this.scale = this.scaleFor(this.scroller.clientHeight);
    this.virtualizer = new Virtualizer<HTMLDivElement, HTMLTableRowElement>({
      count: this.count,
      getScrollElement: () => this.scroller,
      estimateSize: () => ROW_HEIGHT,
      // The virtualizer works in rows' pixels; the scroller in its own, `scale` times fewer.
      scrollToFn: (offset, options, instance) => elementScroll(offset / this.scale, options, instance),
      observeElementRect: (instance, cb) => observeElementRect(instance, (rect) => {
        this.scale = this.scaleFor(rect.height);
        cb(rect);
      }),
      observeElementOffset: (instance, cb) => observeElementOffset(instance, (offset, isScrolling) => cb(offset * this.scale, isScrolling)),
      overscan: 10,
      // The sticky header sits above row 0 and covers the top of the viewport.
      paddingStart: this.headHeight,
      scrollPaddingStart: this.headHeight,
      initialOffset: this.initialScrollTop * this.scale,
      onChange: () => this.render(),
    });
    this.unmount = this.virtualizer._didMount();
    // Scaled, the rows move `scale` times faster than the content: the spacers follow every scroll event, not
    // only the ones that change which rows are shown (the virtualizer's onChange).
    const follow = () => { if (this.scale > 1) this.placeRows(); };
    this.scroller.addEventListener('scroll', follow, { passive: true });
    const unmount = this.unmount;
    this.unmount = () => { this.scroller.removeEventListener('scroll', follow); unmount(); };
    this.virtualizer._willUpdate();
    this.render();
    this.scroller.scrollTop = this.initialScrollTop;
  }

  private render(): void {
    const v = this.virtualizer;
    if (!v) return;
    const items = v.getVirtualItems();
    this.visible = items;
    this.placeRows();
    const next = new Map<number, HTMLTableRowElement>();
    for (const item of items) next.set(item.index, this.rowCache.get(item.index) ?? this.buildRow(item.index));
    this.rowCache = next;
    this.tbody.replaceChildren(this.topSpacer, ...next.values(), this.bottomSpacer);
    this.updateActiveDescendant();
    window.clearTimeout(this.fetchTimer);
    // Debounced, so dragging the scrollbar across 100,000 rows asks only for where it stops.
    this.fetchTimer = window.setTimeout(() => this.fetchVisible(), 60);
  }

  /** Rows' pixels per scroller pixel for a viewport of `viewport` px: 1, or more when the rows are too tall. */
  private scaleFor(viewport: number): number {
    const rows = this.headHeight + this.count * ROW_HEIGHT;
    if (rows <= MAX_SCROLL_PX) return 1;
    return (rows - viewport) / Math.max(1, MAX_SCROLL_PX - viewport);
  }

  /**
   * Sizes the spacers around the rendered rows. Unscaled, they are the rows above and below. Scaled, the content
   * is MAX_SCROLL_PX tall and the rows sit where they belong in the viewport: a row `start` px down the rows
   * shows `start - offset` px below the top of the viewport, where offset = scrollTop × scale.
   */
  private placeRows(): void {
    const v = this.virtualizer;
    const first = this.visible[0];
    const last = this.visible[this.visible.length - 1];
    if (!v || !first || !last) {
      this.topSpacer.style.height = this.bottomSpacer.style.height = '0px';
      return;
    }
    if (this.scale === 1) {
      this.topSpacer.style.height = `${first.start - this.headHeight}px`;
      this.bottomSpacer.style.height = `${v.getTotalSize() - last.end}px`;
      return;
    }
    const top = this.scroller.scrollTop;
    const above = Math.max(0, top + (first.start - top * this.scale) - this.headHeight);
    this.topSpacer.style.height = `${above}px`;
    this.bottomSpacer.style.height = `${Math.max(0, MAX_SCROLL_PX - this.headHeight - above - (last.end - first.start))}px`;
  }

  private fetchVisible(): void {
    if (this.failed) return;
    const first = this.visible[0]?.index ?? 0;
    const last = this.visible[this.visible.length - 1]?.index ?? 0;
    const asked = new Set(this.pending.values());
    for (let p = Math.floor(first / PAGE_SIZE); p <= Math.floor(last / PAGE_SIZE); p++) {
      if (!this.pages.has(p) && !asked.has(p)) this.request(p);
    }
  }

  private evict(keep: number): void {
    while (this.pages.size > MAX_PAGES) {
      const far = [...this.pages.keys()].reduce((a, b) => (Math.abs(b - keep) > Math.abs(a - keep) ? b : a));
      this.pages.delete(far);
      for (const i of [...this.rowCache.keys()]) if (Math.floor(i / PAGE_SIZE) === far) this.rowCache.delete(i);
    }
  }

  private buildRow(index: number): HTMLTableRowElement {
    const tr = el('tr');
    tr.dataset.row = String(index);
    tr.setAttribute('aria-rowindex', String(index + 2));
    tr.append(el('th', 'rownum', String(index + 1)));
    const row = this.pages.get(Math.floor(index / PAGE_SIZE))?.[index % PAGE_SIZE];
    (this.columns ?? []).forEach((_c, col) => {
      const td = el('td', this.numeric[col] ? 'num' : undefined);
      td.dataset.col = String(col);
      td.setAttribute('role', 'gridcell');
      if (!row) {
        td.classList.add('pending');
      } else if (row[col] === null) {
        td.classList.add('null');
        td.textContent = 'NULL';
      } else {
        const v = row[col] as string;
        td.textContent = v.length > MAX_CELL_CHARS ? `${v.slice(0, MAX_CELL_CHARS)}…` : v;
        if (v.length > 40) td.title = v.slice(0, MAX_CELL_CHARS);
      }
      if (this.selected?.row === index && this.selected.col === col) {
        td.classList.add('selected');
        td.id = 'grid-active-cell';
        td.setAttribute('aria-selected', 'true');
      }
      tr.append(td);
    });
    return tr;
  }

  private onClick(e: MouseEvent): void {
    const td = (e.target as Element).closest('td');
    const tr = td?.parentElement;
    if (!td?.dataset.col || !tr?.dataset.row) return;
    this.select(Number(tr.dataset.row), Number(td.dataset.col), false);
    this.focus();
  }

  private onKey(e: KeyboardEvent): void {
    const cols = this.columns?.length ?? 0;
    if (!this.virtualizer || this.count === 0 || cols === 0) return;
    const mod = e.ctrlKey || e.metaKey;
    if (mod && e.key.toLowerCase() === 'c') {
      e.preventDefault();
      this.copySelected();
      return;
    }
    const at = this.selected ?? { row: this.virtualizer.range?.startIndex ?? 0, col: 0 };
    const pageRows = Math.max(1, Math.floor((this.scroller.clientHeight - this.headHeight) / ROW_HEIGHT) - 1);
    let { row, col } = at;
    switch (e.key) {
      case 'ArrowUp': row -= 1; break;
      case 'ArrowDown': row += 1; break;
      case 'ArrowLeft': col -= 1; break;
      case 'ArrowRight': col += 1; break;
      case 'PageUp': row -= pageRows; break;
      case 'PageDown': row += pageRows; break;
      // As in the ARIA grid pattern: Home/End move within the row, with Ctrl (Cmd) to the first/last row.
      case 'Home': col = 0; if (mod) row = 0; break;
      case 'End': col = cols - 1; if (mod) row = this.count - 1; break;
      default: return;
    }
    e.preventDefault();
    this.select(Math.max(0, Math.min(this.count - 1, row)), Math.max(0, Math.min(cols - 1, col)), true);
  }

  private select(row: number, col: number, scroll: boolean): void {
    const before = this.selected;
    this.selected = { row, col };
    if (before) this.rowCache.delete(before.row);
    this.rowCache.delete(row);
    if (scroll) {
      this.virtualizer?.scrollToIndex(row, { align: 'auto' });
      this.revealColumn(col);
    }
    this.render();
    this.host.selectionChanged();
  }

  /** Scrolls sideways so the column is not under the sticky row-number column or past the right edge. */
  private revealColumn(col: number): void {
    const ths = this.table.tHead?.rows[0]?.cells;
    const th = ths?.[col + 1];
    if (!th || !ths) return;
    // Measured on screen: offsetLeft of a sticky cell moves with the scroll.
    const box = this.scroller.getBoundingClientRect();
    const left = box.left + this.scroller.clientLeft + ths[0].getBoundingClientRect().width;
    const right = box.left + this.scroller.clientLeft + this.scroller.clientWidth;
    const r = th.getBoundingClientRect();
    if (r.left < left) this.scroller.scrollLeft -= left - r.left;
    else if (r.right > right) this.scroller.scrollLeft += Math.min(r.right - right, r.left - left);
  }

  private updateActiveDescendant(): void {
    if (document.getElementById('grid-active-cell')) this.table.setAttribute('aria-activedescendant', 'grid-active-cell');
    else this.table.removeAttribute('aria-activedescendant');
  }
}
