// Watches configuration files and folders and file:// modules, and reports changes after a quiet
// period (editors and `go build` write in several steps). Files are watched through their folder,
// so a file replaced by rename (most editors, `cp`, Kubernetes ConfigMap symlink swaps) is seen.
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

const QUIET_MS = 300;

export class ChangeWatcher {
  readonly #onChange: (files: string[]) => void;
  readonly #watchers = new Map<string, FSWatcher>();
  /** Folder -> the names in it we care about ('*' for every YAML file, recursively). */
  #interest = new Map<string, Set<string>>();
  #pending = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(onChange: (files: string[]) => void) {
    this.#onChange = onChange;
  }

  /** Replaces the watched set: config paths (files or folders) and module files. */
  set(paths: readonly string[]): void {
    if (this.#closed) return;
    const interest = new Map<string, Set<string>>();
    const add = (dir: string, name: string) => {
      let names = interest.get(dir);
      if (!names) interest.set(dir, (names = new Set()));
      names.add(name);
    };
    for (const p of paths) {
      const abs = resolve(p);
      let isDir = false;
      try {
        isDir = statSync(abs).isDirectory();
      } catch {
        // Missing now: watch its folder so that its creation is seen.
      }
      if (isDir) add(abs, '*');
      else add(dirname(abs), basename(abs));
    }
    for (const [dir, w] of this.#watchers) {
      if (!interest.has(dir)) {
        w.close();
        this.#watchers.delete(dir);
      }
    }
    for (const dir of interest.keys()) {
      if (this.#watchers.has(dir)) continue;
      try {
        const recursive = interest.get(dir)!.has('*');
        const w = watch(dir, { recursive, persistent: false }, (_event, name) =>
          this.#event(dir, name ? String(name) : ''),
        );
        w.on('error', () => {});
        this.#watchers.set(dir, w);
      } catch {
        // A folder that does not exist cannot be watched; the next reload tries again.
      }
    }
    this.#interest = interest;
  }

  #event(dir: string, name: string): void {
    const names = this.#interest.get(dir);
    if (!names) return;
    const file = basename(name);
    const yaml = /\.ya?ml$/i.test(file);
    // Kubernetes ConfigMap volumes swap a `..data` symlink: treat it as a change of everything.
    const swap = file === '..data' || name.startsWith('..');
    if (!(names.has(file) || (names.has('*') && (yaml || swap)))) return;
    this.#pending.add(resolve(dir, name));
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      const files = [...this.#pending];
      this.#pending.clear();
      if (!this.#closed) this.#onChange(files);
    }, QUIET_MS);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }
}
