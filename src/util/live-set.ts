// A set of live objects that come and go at a high rate (connections, sessions), for the few
// operations a listener needs: add, delete, has, size, and iterating over a snapshot.
//
// Why not a Set: V8 stores a Set in an insertion-ordered hash table that, under steady add/delete
// churn, is rehashed into a new table again and again. The dead old table, by then in the old
// generation, still links to its successor and holds the entries live at the time of the rehash,
// so every rehash keeps those connections' whole object graphs reachable until the next full GC
// (see PluginVm's contexts, where this cost 3.7x the CPU per request). Here each object carries
// its own slot index under a per-set symbol, and the array only ever holds live objects.

export class LiveSet<T extends object> implements Iterable<T> {
  readonly #items: T[] = [];
  readonly #slot = Symbol('LiveSet slot');

  get size(): number {
    return this.#items.length;
  }

  #index(item: T): number | undefined {
    return (item as Record<symbol, number | undefined>)[this.#slot];
  }

  #setIndex(item: T, index: number | undefined): void {
    (item as Record<symbol, number | undefined>)[this.#slot] = index;
  }

  has(item: T): boolean {
    return this.#index(item) !== undefined;
  }

  add(item: T): this {
    if (this.#index(item) === undefined) {
      this.#setIndex(item, this.#items.length);
      this.#items.push(item);
    }
    return this;
  }

  /** Removes `item` (the last one takes its slot); false when it was not in the set. */
  delete(item: T): boolean {
    const i = this.#index(item);
    if (i === undefined) return false;
    this.#setIndex(item, undefined);
    const last = this.#items.pop()!;
    if (last !== item) {
      this.#items[i] = last;
      this.#setIndex(last, i);
    }
    return true;
  }

  /** The first item `predicate` accepts (no snapshot: the predicate must not add or delete). */
  find(predicate: (item: T) => boolean): T | undefined {
    for (const item of this.#items) if (predicate(item)) return item;
    return undefined;
  }

  /** Iterates over a snapshot: deleting (e.g. destroying a socket) while iterating is safe. */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.slice()[Symbol.iterator]();
  }
}
